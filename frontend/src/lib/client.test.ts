import { describe, expect, it } from "vitest";
import { SpoolStream, type ClientOptions, type Status, type StreamHandlers } from "./client";
import type { StreamEvent } from "./events";

const ID = "AAAAAAAAAAAAAAAAAAAAAA";
const encoder = new TextEncoder();

const start: StreamEvent = { seq: 1, type: "start", id: ID, model: "m", created: 1 };
const delta = (seq: number, text: string): StreamEvent => ({ seq, type: "delta", text });
const done = (seq: number): StreamEvent => ({ seq, type: "done", finish_reason: "stop", usage: { total_tokens: 3 } });

interface BodyScript {
  events?: StreamEvent[];
  /** Raw text appended after the events (a half line, say). */
  tail?: string;
  /** How the body ends: "close" normally, "drop" with a network error, "hang" never. */
  end?: "close" | "drop" | "hang";
}

function ndjsonResponse({ events = [], tail = "", end = "close" }: BodyScript, status = 200): Response {
  const text = events.map((e) => `${JSON.stringify(e)}\n`).join("") + tail;
  const bytes = encoder.encode(text);
  let sent = 0;
  // Pulled one byte per chunk: the client must not care where chunks end.
  // (Erroring from start() would discard the queued chunks.)
  const body = new ReadableStream<Uint8Array>(
    {
      pull(controller) {
        if (sent < bytes.length) controller.enqueue(bytes.slice(sent, ++sent));
        else if (end === "close") controller.close();
        else if (end === "drop") controller.error(new TypeError("network error"));
      },
    },
    { highWaterMark: 0 },
  );
  return new Response(body, { status, headers: { "Content-Type": "application/x-ndjson", "X-Stream-Id": ID } });
}

function errorResponse(status: number, code: string, message: string): Response {
  return new Response(JSON.stringify({ error: { code, message } }), {
    status,
    headers: { "Content-Type": "application/json" },
  });
}

type Answer = Response | Error;

/** A fetch that answers the queued answers in order and records each call. */
function scriptedFetch(answers: Answer[]) {
  const calls: { url: string; init: RequestInit }[] = [];
  const fetch = async (input: RequestInfo | URL, init: RequestInit = {}): Promise<Response> => {
    calls.push({ url: String(input), init });
    if (init.signal?.aborted) throw new DOMException("aborted", "AbortError");
    const answer = answers.shift();
    if (answer === undefined) throw new Error(`unexpected fetch ${String(input)}`);
    if (answer instanceof Error) throw answer;
    return answer;
  };
  return { fetch: fetch as typeof globalThis.fetch, calls };
}

function record() {
  const events: StreamEvent[] = [];
  const statuses: Status[] = [];
  const ids: string[] = [];
  const handlers: StreamHandlers = {
    onId: (id) => ids.push(id),
    onEvent: (e) => events.push(e),
    onStatus: (s) => statuses.push(s),
  };
  const text = () => events.map((e) => (e.type === "delta" ? e.text : "")).join("");
  return { events, statuses, ids, handlers, text };
}

const fast = (fetch: typeof globalThis.fetch): ClientOptions => ({
  fetch,
  backoff: { initialMs: 0, maxMs: 0, maxAttempts: 3 },
});

const REQUEST = { messages: [{ role: "user" as const, content: "hi" }] };

describe("SpoolStream.start", () => {
  it("posts the request and delivers the stream", async () => {
    const { fetch, calls } = scriptedFetch([ndjsonResponse({ events: [start, delta(2, "a"), delta(3, "é"), done(4)] })]);
    const r = record();
    const final = await SpoolStream.start(REQUEST, r.handlers, fast(fetch)).done;

    expect(calls[0].url).toBe("/v1/streams");
    expect(calls[0].init.method).toBe("POST");
    expect(calls[0].init.headers).toMatchObject({ Accept: "application/x-ndjson", "Content-Type": "application/json" });
    expect(JSON.parse(calls[0].init.body as string)).toEqual(REQUEST);
    expect(r.ids).toEqual([ID]);
    expect(r.text()).toBe("aé");
    expect(final).toEqual({ state: "done", finishReason: "stop", usage: { total_tokens: 3 } });
    expect(r.statuses.map((s) => s.state)).toEqual(["queued", "streaming", "done"]);
  });

  it("accepts a jump in seq only onto a reset (the rerun after a failover)", async () => {
    const reset: StreamEvent = { seq: 100003, type: "reset", attempt: 2, reason: "worker_lost" };
    const { fetch } = scriptedFetch([
      ndjsonResponse({ events: [start, delta(2, "lost "), reset, delta(100004, "kept"), done(100005)] }),
    ]);
    const r = record();
    const final = await SpoolStream.start(REQUEST, r.handlers, fast(fetch)).done;

    expect(r.events.map((e) => e.seq)).toEqual([1, 2, 100003, 100004, 100005]);
    expect(final.state).toBe("done");
  });

  it("resumes after a drop from the last seq, dropping replayed events", async () => {
    const { fetch, calls } = scriptedFetch([
      ndjsonResponse({ events: [start, delta(2, "one "), delta(3, "two ")], tail: '{"seq":4,"ty', end: "drop" }),
      // The server may replay from further back; nothing may repeat.
      ndjsonResponse({ events: [delta(3, "two "), delta(4, "three"), done(5)] }),
    ]);
    const r = record();
    const final = await SpoolStream.start(REQUEST, r.handlers, fast(fetch)).done;

    expect(calls[1].url).toBe(`/v1/streams/${ID}/events?after=3`);
    expect(calls[1].init.headers).toMatchObject({ Accept: "application/x-ndjson" });
    expect(r.text()).toBe("one two three");
    expect(r.events.map((e) => e.seq)).toEqual([1, 2, 3, 4, 5]);
    expect(final.state).toBe("done");
    expect(r.statuses).toContainEqual({ state: "reconnecting", attempt: 1, after: 3, delayMs: 0 });
    expect(r.statuses).toContainEqual({ state: "streaming", resumedAt: 3 });
  });

  it("resumes when the body ends without a terminal event", async () => {
    const { fetch, calls } = scriptedFetch([
      ndjsonResponse({ events: [start, delta(2, "x")] }),
      ndjsonResponse({ events: [done(3)] }),
    ]);
    const final = await SpoolStream.start(REQUEST, {}, fast(fetch)).done;
    expect(calls[1].url).toBe(`/v1/streams/${ID}/events?after=2`);
    expect(final.state).toBe("done");
  });

  it("retries a 503 and keeps counting attempts", async () => {
    const { fetch, calls } = scriptedFetch([
      ndjsonResponse({ events: [start], end: "drop" }),
      errorResponse(503, "unavailable", "Redis is down"),
      new TypeError("network error"),
      ndjsonResponse({ events: [done(2)] }),
    ]);
    const r = record();
    const final = await SpoolStream.start(REQUEST, r.handlers, fast(fetch)).done;
    expect(final.state).toBe("done");
    expect(calls.map((c) => c.url.split("?")[1] ?? "")).toEqual(["", "after=1", "after=1", "after=1"]);
    const attempts = r.statuses.flatMap((s) => (s.state === "reconnecting" ? [s.attempt] : []));
    expect(attempts).toEqual([1, 2, 3]);
  });

  it("gives up after maxAttempts failed connections", async () => {
    const drop = () => new TypeError("network error");
    const { fetch, calls } = scriptedFetch([ndjsonResponse({ events: [start], end: "drop" }), drop(), drop(), drop()]);
    const final = await SpoolStream.start(REQUEST, {}, fast(fetch)).done;
    expect(final).toMatchObject({ state: "error", code: "network" });
    expect(calls).toHaveLength(4);
  });

  it("reconnects from the last seq when a seq is skipped", async () => {
    const { fetch, calls } = scriptedFetch([
      ndjsonResponse({ events: [start, delta(3, "lost")] }),
      ndjsonResponse({ events: [delta(2, "a"), delta(3, "b"), done(4)] }),
    ]);
    const r = record();
    await SpoolStream.start(REQUEST, r.handlers, fast(fetch)).done;
    expect(calls[1].url).toContain("after=1");
    expect(r.text()).toBe("ab");
  });

  it("reconnects when the connection goes quiet", async () => {
    const { fetch, calls } = scriptedFetch([
      ndjsonResponse({ events: [start], end: "hang" }),
      ndjsonResponse({ events: [done(2)] }),
    ]);
    const final = await SpoolStream.start(REQUEST, {}, { ...fast(fetch), idleTimeoutMs: 20 }).done;
    expect(calls[1].url).toContain("after=1");
    expect(final.state).toBe("done");
  });

  it("reports the server's message when the request is refused, without retrying", async () => {
    const { fetch, calls } = scriptedFetch([errorResponse(422, "invalid_request", "messages: required")]);
    const r = record();
    const final = await SpoolStream.start(REQUEST, r.handlers, fast(fetch)).done;
    expect(final).toEqual({ state: "error", code: "invalid_request", message: "messages: required" });
    expect(calls).toHaveLength(1);
    expect(r.ids).toEqual([]);
  });

  it("does not post twice when the POST itself fails", async () => {
    const { fetch, calls } = scriptedFetch([new TypeError("Failed to fetch")]);
    const final = await SpoolStream.start(REQUEST, {}, fast(fetch)).done;
    expect(final).toEqual({ state: "error", code: "network", message: "Failed to fetch" });
    expect(calls).toHaveLength(1);
  });

  it("ends on an error event with its code and message", async () => {
    const error: StreamEvent = { seq: 2, type: "error", code: "upstream_error", message: "upstream answered 500" };
    const { fetch } = scriptedFetch([ndjsonResponse({ events: [start, error] })]);
    const final = await SpoolStream.start(REQUEST, {}, fast(fetch)).done;
    expect(final).toEqual({ state: "error", code: "upstream_error", message: "upstream answered 500" });
  });

  it("reports a body that is not the protocol", async () => {
    const { fetch, calls } = scriptedFetch([ndjsonResponse({ tail: "<html>\n" })]);
    const final = await SpoolStream.start(REQUEST, {}, fast(fetch)).done;
    expect(final).toMatchObject({ state: "error", code: "protocol" });
    expect(calls).toHaveLength(1);
  });
});

describe("SpoolStream.follow", () => {
  it("asks for events after the given seq and says where it resumed", async () => {
    const { fetch, calls } = scriptedFetch([ndjsonResponse({ events: [delta(5, "e"), done(6)] })]);
    const r = record();
    await SpoolStream.follow(ID, 4, r.handlers, fast(fetch)).done;
    expect(calls[0].url).toBe(`/v1/streams/${ID}/events?after=4`);
    expect(r.statuses[0]).toEqual({ state: "streaming", resumedAt: 4 });
    expect(r.text()).toBe("e");
  });

  it("ends with not_found for an unknown stream", async () => {
    const { fetch, calls } = scriptedFetch([errorResponse(404, "not_found", "no such stream")]);
    const final = await SpoolStream.follow(ID, 0, {}, fast(fetch)).done;
    expect(final).toEqual({ state: "error", code: "not_found", message: "no such stream" });
    expect(calls).toHaveLength(1);
  });

  it("uses the base URL", async () => {
    const { fetch, calls } = scriptedFetch([ndjsonResponse({ events: [done(1)] })]);
    await SpoolStream.follow(ID, 0, {}, { ...fast(fetch), baseUrl: "http://gw" }).done;
    expect(calls[0].url).toBe(`http://gw/v1/streams/${ID}/events?after=0`);
  });
});

describe("cancel and close", () => {
  /** A response whose body the test writes into while the client reads. */
  function liveResponse() {
    let controller!: ReadableStreamDefaultController<Uint8Array>;
    const body = new ReadableStream<Uint8Array>({ start: (c) => void (controller = c) });
    const send = (...events: StreamEvent[]) =>
      events.forEach((e) => controller.enqueue(encoder.encode(`${JSON.stringify(e)}\n`)));
    const response = new Response(body, { headers: { "X-Stream-Id": ID } });
    return { response, send, close: () => controller.close() };
  }

  it("asks the server to cancel and ends on its cancelled event", async () => {
    const live = liveResponse();
    const { fetch, calls } = scriptedFetch([live.response, new Response('{"id":"x","status":"cancelled"}')]);
    const r = record();
    const stream = SpoolStream.start(REQUEST, r.handlers, fast(fetch));
    live.send(start, delta(2, "partial"));

    await stream.cancel();
    expect(calls[1].url).toBe(`/v1/streams/${ID}/cancel`);
    expect(calls[1].init.method).toBe("POST");

    live.send({ seq: 3, type: "cancelled" });
    expect(await stream.done).toEqual({ state: "cancelled" });
    expect(r.text()).toBe("partial");
  });

  it("rejects when the server refuses the cancel", async () => {
    const live = liveResponse();
    const { fetch } = scriptedFetch([live.response, errorResponse(404, "not_found", "expired")]);
    const stream = SpoolStream.start(REQUEST, {}, fast(fetch));
    await expect(stream.cancel()).rejects.toMatchObject({ status: 404, code: "not_found" });
    stream.close();
  });

  it("cancels nothing when the POST failed", async () => {
    const { fetch, calls } = scriptedFetch([new TypeError("Failed to fetch")]);
    const stream = SpoolStream.start(REQUEST, {}, fast(fetch));
    await stream.cancel();
    expect(calls).toHaveLength(1);
  });

  it("close() stops reading and calls no handler after", async () => {
    const live = liveResponse();
    const { fetch } = scriptedFetch([live.response]);
    const r = record();
    const stream = SpoolStream.start(REQUEST, r.handlers, fast(fetch));
    live.send(start);
    await new Promise((resolve) => setTimeout(resolve, 0));
    stream.close();
    const seen = r.statuses.length;

    expect((await stream.done).state).toBe("streaming");
    expect(r.statuses).toHaveLength(seen);
    expect(r.events).toEqual([start]);
  });
});
