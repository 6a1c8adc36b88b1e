import { describe, expect, it } from "vitest";
import { NO_PARTS, applyParts, type StreamEvent } from "./events";

describe("applyParts", () => {
  it("assembles reasoning, refusal and tool calls as they stream", () => {
    const events: StreamEvent[] = [
      { seq: 1, type: "start", id: "x", model: "m", created: 1 },
      { seq: 2, type: "reasoning", text: "let me " },
      { seq: 3, type: "reasoning", text: "think 🙂" },
      { seq: 4, type: "tool_call", index: 1, id: "b", tool_type: "custom", name: "shell" },
      { seq: 5, type: "tool_call", index: 0, id: "a", tool_type: "function", name: "get_weather" },
      { seq: 6, type: "tool_call_delta", index: 0, arguments: '{"city": "Kö' },
      { seq: 7, type: "tool_call_delta", index: 1, arguments: "ls" },
      { seq: 8, type: "tool_call_delta", index: 0, arguments: 'ln"}' },
      { seq: 9, type: "refusal", text: "no" },
      { seq: 10, type: "done", finish_reason: "tool_calls", usage: null },
    ];
    const parts = events.reduce(applyParts, NO_PARTS);
    expect(parts.reasoning).toBe("let me think 🙂");
    expect(parts.refusal).toBe("no");
    expect(parts.toolCalls).toEqual([
      { index: 0, id: "a", type: "function", name: "get_weather", arguments: '{"city": "Köln"}' },
      { index: 1, id: "b", type: "custom", name: "shell", arguments: "ls" },
    ]);
  });

  it("starts over on reset and passes text events by", () => {
    const events: StreamEvent[] = [
      { seq: 1, type: "reasoning", text: "old" },
      { seq: 2, type: "reset", attempt: 2, reason: "worker_lost" },
      { seq: 3, type: "delta", text: "hi" },
      { seq: 4, type: "tool_call_delta", index: 0, arguments: "{}" },
    ];
    expect(events.reduce(applyParts, NO_PARTS)).toEqual({
      reasoning: "",
      refusal: "",
      toolCalls: [{ index: 0, id: null, type: "function", name: null, arguments: "{}" }],
    });
  });
});
