import { applyEvent } from "./events";
import { describe, expect, it } from "vitest";
import { ProtocolError } from "./errors";
import { LineDecoder, NdjsonParser, SseParser, type EventParser } from "./parser";
import type { StreamEvent } from "./events";

const encoder = new TextEncoder();

// Multi-byte on purpose: 2-, 3- and 4-byte UTF-8 characters.
const EVENTS: StreamEvent[] = [
  { seq: 1, type: "start", id: "abc", model: "m", created: 1 },
  { seq: 2, type: "delta", text: "héllo " },
  { seq: 3, type: "delta", text: "日本語 🎉\n" },
  { seq: 4, type: "done", finish_reason: "stop", usage: null },
];

const NDJSON =
  `${JSON.stringify(EVENTS[0])}\n{"type":"heartbeat"}\n` +
  EVENTS.slice(1).map((e) => `${JSON.stringify(e)}\n`).join("");

const SSE =
  ": heartbeat\n\n" +
  EVENTS.map((e) => `id: ${e.seq}\nevent: ${e.type}\ndata: ${JSON.stringify(e)}\n\n`).join("");

function parseSplit(parser: EventParser, bytes: Uint8Array, cuts: number[]): StreamEvent[] {
  const events: StreamEvent[] = [];
  let start = 0;
  for (const cut of [...cuts, bytes.length]) {
    events.push(...parser.feed(bytes.slice(start, cut)));
    start = cut;
  }
  return [...events, ...parser.flush()];
}

describe.each([
  ["ndjson", () => new NdjsonParser(), NDJSON],
  ["sse", () => new SseParser(), SSE],
])("%s parser", (_name, make, text) => {
  const bytes = encoder.encode(text);

  it("parses the whole body at once", () => {
    expect(parseSplit(make(), bytes, [])).toEqual(EVENTS);
  });

  it("gives the same events for a split at every byte", () => {
    for (let cut = 1; cut < bytes.length; cut++) {
      expect(parseSplit(make(), bytes, [cut])).toEqual(EVENTS);
    }
  });

  it("gives the same events byte by byte", () => {
    const cuts = Array.from({ length: bytes.length - 1 }, (_, i) => i + 1);
    expect(parseSplit(make(), bytes, cuts)).toEqual(EVENTS);
  });

  it("returns an event as soon as its frame is complete", () => {
    const parser = make();
    const frameEnd = text.indexOf("héllo"); // inside the second event
    expect(parser.feed(text.slice(0, frameEnd))).toEqual([EVENTS[0]]);
  });

  it("accepts CRLF line endings", () => {
    // The "\n" inside a JSON text is an escape, so only real line ends change.
    expect(parseSplit(make(), encoder.encode(text.replaceAll("\n", "\r\n")), [7, 50])).toEqual(EVENTS);
  });
});

describe("NdjsonParser", () => {
  it("skips heartbeats and blank lines", () => {
    const parser = new NdjsonParser();
    expect(parser.feed('{"type":"heartbeat"}\n\n{"type":"heartbeat"}\n')).toEqual([]);
  });

  it("parses an unterminated last line on flush", () => {
    const parser = new NdjsonParser();
    expect(parser.feed('{"seq":1,"type":"cancelled"}')).toEqual([]);
    expect(parser.flush()).toEqual([{ seq: 1, type: "cancelled" }]);
  });

  it("rejects a line that is not JSON", () => {
    expect(() => new NdjsonParser().feed("<html>\n")).toThrow(ProtocolError);
  });

  it("rejects a line cut short at flush", () => {
    const parser = new NdjsonParser();
    parser.feed('{"seq":1,"type":"delta","te');
    expect(() => parser.flush()).toThrow(ProtocolError);
  });

  it("rejects an event with a bad seq", () => {
    expect(() => new NdjsonParser().feed('{"seq":0,"type":"delta","text":""}\n')).toThrow(ProtocolError);
  });
});

describe("SseParser", () => {
  it("ignores comments and joins data lines", () => {
    const parser = new SseParser();
    const events = parser.feed(': heartbeat\n\ndata:{"seq":1,\ndata: "type":"cancelled"}\n\n');
    expect(events).toEqual([{ seq: 1, type: "cancelled" }]);
  });

  it("drops an event not ended by a blank line", () => {
    const parser = new SseParser();
    expect(parser.feed('data: {"seq":1,"type":"cancelled"}\n')).toEqual([]);
    expect(parser.flush()).toEqual([]);
  });
});

describe("LineDecoder", () => {
  it("holds a multi-byte character split across chunks", () => {
    const decoder = new LineDecoder();
    const bytes = encoder.encode("🎉\n");
    expect(decoder.feed(bytes.slice(0, 2))).toEqual([]);
    expect(decoder.feed(bytes.slice(2))).toEqual(["🎉"]);
  });

  it("flushes the unterminated rest", () => {
    const decoder = new LineDecoder();
    expect(decoder.feed("a\nb")).toEqual(["a"]);
    expect(decoder.flush()).toEqual(["b"]);
    expect(decoder.flush()).toEqual([]);
  });
});

describe("applyEvent", () => {
  it("appends deltas and starts over on reset", () => {
    const events = [
      { seq: 1, type: "start", id: "x", model: "m", created: 1 },
      { seq: 2, type: "delta", text: "half an " },
      { seq: 3, type: "reset", attempt: 2, reason: "worker_lost" },
      { seq: 4, type: "delta", text: "whole " },
      { seq: 5, type: "delta", text: "answer" },
      { seq: 6, type: "done", finish_reason: "stop", usage: null },
    ] as const;
    expect(events.reduce(applyEvent, "")).toBe("whole answer");
  });
});
