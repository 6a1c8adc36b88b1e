/** The events of a spool stream, as docs/protocol.md defines them. */
import { ProtocolError } from "./errors";

export interface Usage {
  prompt_tokens?: number;
  completion_tokens?: number;
  total_tokens?: number;
}

export type StreamEvent =
  | { seq: number; type: "start"; id: string; model: string; created: number }
  | { seq: number; type: "delta"; text: string }
  /** The answer starts over (its worker was lost, or the model failed mid-answer): drop the text so far. */
  | { seq: number; type: "reset"; attempt: number; reason: string }
  | { seq: number; type: "reasoning"; text: string }
  | { seq: number; type: "refusal"; text: string }
  /** A tool call begins; its arguments follow as tool_call_delta fragments. */
  | { seq: number; type: "tool_call"; index: number; id: string | null; tool_type: string; name: string | null }
  | { seq: number; type: "tool_call_delta"; index: number; arguments: string }
  | { seq: number; type: "logprobs"; content?: unknown[]; refusal?: unknown[] }
  | {
      seq: number;
      type: "done";
      finish_reason: string;
      usage: Usage | null;
      model?: string;
      system_fingerprint?: string;
      service_tier?: string;
    }
  | { seq: number; type: "error"; code: string; message: string; status?: number; param?: string }
  | { seq: number; type: "cancelled" };

export type TerminalEvent = Extract<StreamEvent, { type: "done" | "error" | "cancelled" }>;

export function isTerminal(event: StreamEvent): event is TerminalEvent {
  return event.type === "done" || event.type === "error" || event.type === "cancelled";
}

/**
 * Checks one decoded JSON value. Heartbeats (no `seq`) give null: they only
 * keep the connection alive. Unknown types with a seq pass through so that the
 * resume cursor still advances past them.
 */
export function toEvent(value: unknown): StreamEvent | null {
  if (typeof value !== "object" || value === null || typeof (value as { type?: unknown }).type !== "string") {
    throw new ProtocolError(`not an event: ${JSON.stringify(value)}`);
  }
  const seq = (value as { seq?: unknown }).seq;
  if (seq === undefined) return null;
  if (!Number.isInteger(seq) || (seq as number) < 1) {
    throw new ProtocolError(`bad seq: ${JSON.stringify(value)}`);
  }
  return value as StreamEvent;
}

export function parseEventJson(text: string): StreamEvent | null {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    throw new ProtocolError(`not JSON: ${text.slice(0, 80)}`);
  }
  return toEvent(value);
}

/** The answer's text after `event`: deltas append, a reset starts over. */
export function applyEvent(text: string, event: StreamEvent): string {
  if (event.type === "delta") return text + event.text;
  if (event.type === "reset") return "";
  return text;
}

export interface ToolCall {
  index: number;
  id: string | null;
  type: string;
  name: string | null;
  /** The arguments so far (a custom tool's input); complete once the stream ends. */
  arguments: string;
}

/** The parts of an answer besides its text (docs/protocol.md). */
export interface MessageParts {
  reasoning: string;
  refusal: string;
  toolCalls: ToolCall[];
}

export const NO_PARTS: MessageParts = { reasoning: "", refusal: "", toolCalls: [] };

/** The parts after `event`: reasoning and refusal append, tool calls assemble, a reset starts over. */
export function applyParts(parts: MessageParts, event: StreamEvent): MessageParts {
  switch (event.type) {
    case "reasoning":
      return { ...parts, reasoning: parts.reasoning + event.text };
    case "refusal":
      return { ...parts, refusal: parts.refusal + event.text };
    case "tool_call": {
      const call = { index: event.index, id: event.id, type: event.tool_type, name: event.name, arguments: "" };
      const others = parts.toolCalls.filter((c) => c.index !== event.index);
      return { ...parts, toolCalls: [...others, call].sort((a, b) => a.index - b.index) };
    }
    case "tool_call_delta": {
      const known = parts.toolCalls.some((c) => c.index === event.index);
      const calls = known
        ? parts.toolCalls
        : [...parts.toolCalls, { index: event.index, id: null, type: "function", name: null, arguments: "" }];
      return {
        ...parts,
        toolCalls: calls.map((c) => (c.index === event.index ? { ...c, arguments: c.arguments + event.arguments } : c)),
      };
    }
    case "reset":
      return NO_PARTS;
    default:
      return parts;
  }
}
