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
  | { seq: number; type: "done"; finish_reason: string; usage: Usage | null }
  | { seq: number; type: "error"; code: string; message: string }
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
