import { describe, expect, it } from "vitest";
import { toMessages } from "./conversation";
import { statusText } from "./StatusLine";

describe("toMessages", () => {
  it("sends earlier turns before the new prompt", () => {
    const history = [
      { prompt: "one", answer: "first", status: null },
      { prompt: null, answer: "followed from another tab", status: null },
      { prompt: "failed", answer: "", status: null },
    ];
    expect(toMessages(history, "next")).toEqual([
      { role: "user", content: "one" },
      { role: "assistant", content: "first" },
      { role: "assistant", content: "followed from another tab" },
      { role: "user", content: "failed" },
      { role: "user", content: "next" },
    ]);
  });
});

describe("status line", () => {
  it.each([
    [{ state: "queued", resumedAt: null }, "queued"],
    [{ state: "streaming", resumedAt: 12 }, "streaming · resumed at #12"],
    [{ state: "reconnecting", attempt: 2, after: 12, delayMs: 500 }, "reconnecting (attempt 2) after #12…"],
    [
      { state: "done", finishReason: "length", usage: { prompt_tokens: 3, completion_tokens: 9 } },
      "done · length · 3 prompt + 9 completion tokens",
    ],
    [{ state: "done", finishReason: "stop", usage: null }, "done · stop"],
    [{ state: "error", code: "upstream_error", message: "boom" }, "error · upstream_error: boom"],
    [{ state: "cancelled" }, "cancelled"],
  ] as const)("shows %o as %s", (status, text) => {
    expect(statusText(status)).toBe(text);
  });
});
