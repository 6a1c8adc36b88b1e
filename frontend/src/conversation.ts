/**
 * The conversation outside React: the messages sent with a prompt, and where
 * it survives a reload. The URL names the current stream (`?stream=<id>`), so
 * a reload or a second tab can follow it; sessionStorage keeps this tab's
 * turns and how far the answer was rendered, so a reload resumes after that
 * seq instead of replaying from the start.
 */
import type { Message, MessageParts, Status } from "./lib";
import { NO_STREAM, type StreamState } from "./useStream";

export interface Turn {
  /** null when the stream was started elsewhere (a link from another tab). */
  prompt: string | null;
  answer: string;
  /** Reasoning and tool calls shown with the answer. */
  parts?: MessageParts;
  status: Status | null;
}

export interface Conversation {
  history: Turn[];
  prompt: string | null;
  model: string;
  current: StreamState;
}

const KEY = "spool:conversation";
export const EMPTY: Conversation = { history: [], prompt: null, model: "", current: NO_STREAM };

export function toMessages(history: Turn[], prompt: string): Message[] {
  const messages: Message[] = [];
  for (const turn of history) {
    if (turn.prompt !== null) messages.push({ role: "user", content: turn.prompt });
    if (turn.answer !== "") messages.push({ role: "assistant", content: turn.answer });
  }
  messages.push({ role: "user", content: prompt });
  return messages;
}

/** What to show on load: this tab's saved conversation if the URL names its stream, else that stream alone. */
export function loadConversation(): Conversation {
  const id = new URLSearchParams(window.location.search).get("stream");
  if (id === null) return EMPTY;
  const saved = readSaved();
  if (saved?.current.streamId === id) return saved;
  return { ...EMPTY, current: { ...NO_STREAM, streamId: id } };
}

export function saveConversation(conversation: Conversation): void {
  try {
    sessionStorage.setItem(KEY, JSON.stringify(conversation));
  } catch {
    // Storage full or disabled: a reload then replays the stream from the URL.
  }
  const url = new URL(window.location.href);
  const id = conversation.current.streamId;
  if (url.searchParams.get("stream") === id) return;
  if (id === null) url.searchParams.delete("stream");
  else url.searchParams.set("stream", id);
  window.history.replaceState(null, "", url);
}

function readSaved(): Conversation | null {
  try {
    return JSON.parse(sessionStorage.getItem(KEY) ?? "null") as Conversation | null;
  } catch {
    return null;
  }
}
