// The chat's id lives in the URL (?chat=...) and its messages in
// localStorage, so a reload (or a second tab on the same URL) finds them and
// `resume: true` picks up the answer that is still streaming.
import { generateId, type UIMessage } from "ai";

export function chatIdFromUrl(): string {
  const url = new URL(window.location.href);
  let id = url.searchParams.get("chat");
  if (!id) {
    id = generateId();
    url.searchParams.set("chat", id);
    window.history.replaceState(null, "", url);
  }
  return id;
}

const key = (chatId: string) => `spool-ai-sdk-example:${chatId}`;

export function loadMessages(chatId: string): UIMessage[] {
  try {
    return JSON.parse(localStorage.getItem(key(chatId)) ?? "[]") as UIMessage[];
  } catch {
    return [];
  }
}

export function saveMessages(chatId: string, messages: UIMessage[]): void {
  localStorage.setItem(key(chatId), JSON.stringify(messages));
}
