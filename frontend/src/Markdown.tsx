/**
 * The model's text as Markdown, with no HTML of its own: raw HTML in the text
 * is shown as text, and DOMPurify removes anything else that could run
 * (javascript: links, event handlers).
 */
import DOMPurify from "dompurify";
import { Marked } from "marked";
import { useDeferredValue, useMemo } from "react";

const ESCAPES: Record<string, string> = { "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" };

const markdown = new Marked({
  gfm: true,
  async: false,
  renderer: { html: ({ text }) => text.replace(/[&<>"']/g, (c) => ESCAPES[c]) },
});

export function renderMarkdown(text: string): string {
  return DOMPurify.sanitize(markdown.parse(text) as string);
}

export function Markdown({ text }: { text: string }) {
  // Re-rendering the whole answer on every token is the expensive part; let React skip frames.
  const deferred = useDeferredValue(text);
  const html = useMemo(() => renderMarkdown(deferred), [deferred]);
  return <div className="markdown" dangerouslySetInnerHTML={{ __html: html }} />;
}
