/**
 * One spool stream, read with fetch and resumed after drops.
 *
 * The server keeps every event; the seq is the cursor. When a connection
 * breaks, the client waits (exponential backoff), asks for
 * `/v1/streams/<id>/events?after=<last seq delivered>` and drops any event it
 * has already delivered, so the caller sees each event once, in order.
 */
import { ConnectionLostError, HttpError, ProtocolError } from "./errors";
import { isTerminal, type StreamEvent, type TerminalEvent, type Usage } from "./events";
import { NdjsonParser } from "./parser";

export interface Message {
  role: "system" | "user" | "assistant";
  content: string;
}

export interface StreamRequest {
  messages: Message[];
  model?: string;
  temperature?: number;
  max_tokens?: number;
}

export type Status =
  | { state: "connecting" }
  | { state: "queued"; resumedAt: number | null }
  | { state: "streaming"; resumedAt: number | null }
  | { state: "reconnecting"; attempt: number; after: number; delayMs: number }
  | { state: "done"; finishReason: string; usage: Usage | null }
  | { state: "error"; code: string; message: string }
  | { state: "cancelled" };

export interface StreamHandlers {
  /** The server named the stream (X-Stream-Id): keep it to follow it later. */
  onId?(id: string): void;
  /** Every event once, in seq order. */
  onEvent?(event: StreamEvent): void;
  onStatus?(status: Status): void;
}

export interface Backoff {
  initialMs: number;
  maxMs: number;
  /** Consecutive failed connections before giving up. */
  maxAttempts: number;
}

export interface ClientOptions {
  /** Origin of the gateway; "" means the page's own. */
  baseUrl?: string;
  fetch?: typeof fetch;
  backoff?: Partial<Backoff>;
  /** Reconnect when no byte arrived for this long: the server sends a heartbeat every 15 s. */
  idleTimeoutMs?: number;
}

const NDJSON = "application/x-ndjson";
const DEFAULT_BACKOFF: Backoff = { initialMs: 250, maxMs: 5000, maxAttempts: 10 };

export class SpoolStream {
  id: string | null;
  lastSeq: number;
  /** Settles with the final status: a terminal event's, an error's, or the last one before close(). */
  readonly done: Promise<Status>;

  private readonly controller = new AbortController();
  private readonly fetch: typeof fetch;
  private readonly baseUrl: string;
  private readonly backoff: Backoff;
  private readonly idleTimeoutMs: number;
  private readonly named: Promise<string | null>;
  private resolveNamed!: (id: string | null) => void;
  private status: Status = { state: "connecting" };
  private started: boolean;
  private resumedAt: number | null = null;

  /** Creates a stream: POST /v1/streams, then reads and resumes it. */
  static start(request: StreamRequest, handlers: StreamHandlers = {}, options: ClientOptions = {}): SpoolStream {
    return new SpoolStream(null, 0, handlers, options, request);
  }

  /** Follows an existing stream from `after` (0 replays it all). */
  static follow(id: string, after: number, handlers: StreamHandlers = {}, options: ClientOptions = {}): SpoolStream {
    return new SpoolStream(id, after, handlers, options);
  }

  private constructor(
    id: string | null,
    after: number,
    private readonly handlers: StreamHandlers,
    options: ClientOptions,
    request?: StreamRequest,
  ) {
    this.id = id;
    this.lastSeq = after;
    this.started = after > 0;
    this.fetch = options.fetch ?? globalThis.fetch.bind(globalThis);
    this.baseUrl = options.baseUrl ?? "";
    this.backoff = { ...DEFAULT_BACKOFF, ...options.backoff };
    this.idleTimeoutMs = options.idleTimeoutMs ?? 45_000;
    this.named = new Promise((resolve) => (this.resolveNamed = resolve));
    if (id !== null) this.resolveNamed(id);
    this.done = this.run(request);
  }

  /**
   * Asks the server to stop the answer. The stream keeps reading, so the
   * terminal event (`cancelled`, or `done`/`error` if the answer ended first)
   * still arrives through the handlers.
   */
  async cancel(): Promise<void> {
    const id = await this.named;
    if (id === null) return; // the POST failed: there is no stream to stop
    const response = await this.fetch(`${this.baseUrl}/v1/streams/${encodeURIComponent(id)}/cancel`, {
      method: "POST",
    });
    if (!response.ok) throw await HttpError.from(response);
  }

  /** Stops reading here; the answer goes on on the server. No handler runs after this. */
  close(): void {
    this.controller.abort();
  }

  private async run(request?: StreamRequest): Promise<Status> {
    let attempt = 0;
    try {
      for (;;) {
        const before = this.lastSeq;
        try {
          const terminal = await this.connect(request, attempt > 0);
          if (terminal) return this.finish(terminal);
          // The body ended without a terminal event: a proxy or the server closed it.
        } catch (error) {
          if (this.controller.signal.aborted) return this.status;
          if (!this.retryable(error)) return this.fail(error);
        }
        attempt = this.lastSeq > before ? 1 : attempt + 1;
        if (attempt > this.backoff.maxAttempts) {
          return this.fail(new ConnectionLostError(`gave up after ${this.backoff.maxAttempts} attempts`));
        }
        const delayMs = backoffDelay(this.backoff, attempt);
        this.setStatus({ state: "reconnecting", attempt, after: this.lastSeq, delayMs });
        await sleep(delayMs, this.controller.signal);
        if (this.controller.signal.aborted) return this.status;
      }
    } finally {
      this.resolveNamed(this.id);
    }
  }

  /** One connection: open it, deliver its new events, return the terminal one if it came. */
  private async connect(request: StreamRequest | undefined, resuming: boolean): Promise<TerminalEvent | null> {
    const after = this.lastSeq;
    const response = await this.open(request, after);
    if (resuming || after > 0) this.resumedAt = after;
    this.setStatus({ state: this.started ? "streaming" : "queued", resumedAt: this.resumedAt });
    if (!response.body) throw new ProtocolError("the response has no body");
    const reader = response.body.getReader();
    const parser = new NdjsonParser();
    try {
      for (;;) {
        const { done, value } = await readWithin(reader, this.idleTimeoutMs, this.controller.signal);
        if (done) break;
        for (const event of parser.feed(value)) {
          const terminal = this.deliver(event);
          if (terminal) return terminal;
        }
      }
    } finally {
      // Frees the connection when we stop early (terminal event, timeout, error).
      reader.cancel().catch(() => {});
    }
    try {
      for (const event of parser.flush()) {
        const terminal = this.deliver(event);
        if (terminal) return terminal;
      }
    } catch (error) {
      if (!(error instanceof ProtocolError)) throw error;
      // A line cut short by the drop; the resume fetches it whole.
    }
    return null;
  }

  private async open(request: StreamRequest | undefined, after: number): Promise<Response> {
    const signal = this.controller.signal;
    const response =
      this.id === null
        ? await this.fetch(`${this.baseUrl}/v1/streams`, {
            method: "POST",
            headers: { "Content-Type": "application/json", Accept: NDJSON },
            body: JSON.stringify(request),
            signal,
          })
        : await this.fetch(`${this.baseUrl}/v1/streams/${encodeURIComponent(this.id)}/events?after=${after}`, {
            headers: { Accept: NDJSON },
            cache: "no-store",
            signal,
          });
    if (!response.ok) throw await HttpError.from(response);
    if (this.id === null) {
      const id = response.headers.get("X-Stream-Id");
      if (!id) throw new ProtocolError("the response has no X-Stream-Id");
      this.id = id;
      this.resolveNamed(id);
      this.handlers.onId?.(id);
    }
    return response;
  }

  private deliver(event: StreamEvent): TerminalEvent | null {
    this.controller.signal.throwIfAborted(); // a handler may have called close()
    if (event.seq <= this.lastSeq) return null; // delivered before the drop
    // A seq may jump only onto a `reset`: the rerun after a Redis failover
    // that may have lost events (docs/protocol.md).
    if (event.seq !== this.lastSeq + 1 && event.type !== "reset") {
      throw new ConnectionLostError(`expected seq ${this.lastSeq + 1}, got ${event.seq}`);
    }
    this.lastSeq = event.seq;
    if (event.type === "start" || event.type === "delta" || event.type === "reset") {
      this.started = true;
      this.setStatus({ state: "streaming", resumedAt: this.resumedAt });
    }
    this.handlers.onEvent?.(event);
    return isTerminal(event) ? event : null;
  }

  /** Without an id a retry would POST again and could run the prompt twice. */
  private retryable(error: unknown): boolean {
    if (this.id === null) return false;
    if (error instanceof HttpError) return error.retryable;
    return !(error instanceof ProtocolError);
  }

  private finish(event: TerminalEvent): Status {
    switch (event.type) {
      case "done":
        return this.setStatus({ state: "done", finishReason: event.finish_reason, usage: event.usage });
      case "error":
        return this.setStatus({ state: "error", code: event.code, message: event.message });
      case "cancelled":
        return this.setStatus({ state: "cancelled" });
    }
  }

  private fail(error: unknown): Status {
    const code = error instanceof HttpError ? error.code : error instanceof ProtocolError ? "protocol" : "network";
    const message = error instanceof Error ? error.message : String(error);
    return this.setStatus({ state: "error", code, message });
  }

  private setStatus(status: Status): Status {
    if (this.controller.signal.aborted) return this.status;
    if (JSON.stringify(status) !== JSON.stringify(this.status)) {
      this.status = status;
      this.handlers.onStatus?.(status);
    }
    return status;
  }
}

export function backoffDelay(backoff: Backoff, attempt: number): number {
  const ceiling = Math.min(backoff.maxMs, backoff.initialMs * 2 ** (attempt - 1));
  // Half fixed, half random: clients cut off together do not return together.
  return ceiling / 2 + (Math.random() * ceiling) / 2;
}

function sleep(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    const timer = setTimeout(done, ms);
    signal.addEventListener("abort", done, { once: true });
    function done() {
      clearTimeout(timer);
      signal.removeEventListener("abort", done);
      resolve();
    }
  });
}

/** reader.read(), failing when nothing came for `ms` or on close() (whatever fetch does with the signal). */
function readWithin(
  reader: ReadableStreamDefaultReader<Uint8Array>,
  ms: number,
  signal: AbortSignal,
): Promise<ReadableStreamReadResult<Uint8Array>> {
  if (signal.aborted) return Promise.reject(signal.reason);
  let timer: ReturnType<typeof setTimeout> | undefined;
  let onAbort = () => {};
  const stop = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new ConnectionLostError(`nothing received for ${ms} ms`)), ms);
    onAbort = () => reject(signal.reason);
    signal.addEventListener("abort", onAbort, { once: true });
  });
  return Promise.race([reader.read(), stop]).finally(() => {
    clearTimeout(timer);
    signal.removeEventListener("abort", onAbort);
  });
}
