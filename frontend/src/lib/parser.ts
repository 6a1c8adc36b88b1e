/**
 * Incremental parsers for the two wire formats. They do no I/O: feed them the
 * body's chunks as they come (split anywhere, even inside a UTF-8 character)
 * and they return the events completed so far.
 */
import { parseEventJson, type StreamEvent } from "./events";

export interface EventParser {
  feed(chunk: Uint8Array | string): StreamEvent[];
  /** Call once at the end of the body. */
  flush(): StreamEvent[];
}

/** Bytes to lines. Accepts "\n" and "\r\n" endings. */
export class LineDecoder {
  // stream: true keeps a character's leading bytes until the rest arrive.
  private readonly decoder = new TextDecoder("utf-8");
  private buffer = "";

  feed(chunk: Uint8Array | string): string[] {
    this.buffer += typeof chunk === "string" ? chunk : this.decoder.decode(chunk, { stream: true });
    const lines = this.buffer.split("\n");
    this.buffer = lines.pop() ?? "";
    return lines.map(stripCR);
  }

  /** The unterminated rest, if any. */
  flush(): string[] {
    const rest = this.buffer + this.decoder.decode();
    this.buffer = "";
    return rest === "" ? [] : [stripCR(rest)];
  }
}

function stripCR(line: string): string {
  return line.endsWith("\r") ? line.slice(0, -1) : line;
}

/** `application/x-ndjson`: one JSON event per line. */
export class NdjsonParser implements EventParser {
  private readonly lines = new LineDecoder();

  feed(chunk: Uint8Array | string): StreamEvent[] {
    return parseLines(this.lines.feed(chunk));
  }

  flush(): StreamEvent[] {
    return parseLines(this.lines.flush());
  }
}

function parseLines(lines: string[]): StreamEvent[] {
  const events: StreamEvent[] = [];
  for (const line of lines) {
    if (line.trim() === "") continue;
    const event = parseEventJson(line);
    if (event) events.push(event);
  }
  return events;
}

/**
 * `text/event-stream`. The `data` field carries the whole event (seq and type
 * included), so `id:` and `event:` are redundant here and skipped; comment
 * lines (`: heartbeat`) are too.
 */
export class SseParser implements EventParser {
  private readonly lines = new LineDecoder();
  private data: string[] = [];

  feed(chunk: Uint8Array | string): StreamEvent[] {
    return this.handle(this.lines.feed(chunk));
  }

  /** Per the SSE spec, an event not ended by a blank line is dropped. */
  flush(): StreamEvent[] {
    this.handle(this.lines.flush());
    this.data = [];
    return [];
  }

  private handle(lines: string[]): StreamEvent[] {
    const events: StreamEvent[] = [];
    for (const line of lines) {
      if (line === "") {
        if (this.data.length > 0) {
          const event = parseEventJson(this.data.join("\n"));
          if (event) events.push(event);
        }
        this.data = [];
      } else if (line.startsWith("data:")) {
        this.data.push(line.slice(line.startsWith("data: ") ? 6 : 5));
      }
    }
    return events;
  }
}
