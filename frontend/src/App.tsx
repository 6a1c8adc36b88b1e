import { useEffect, useState, type KeyboardEvent, type SyntheticEvent } from "react";
import { EMPTY, loadConversation, saveConversation, toMessages, type Turn } from "./conversation";
import type { Status } from "./lib";
import { Markdown } from "./Markdown";
import { MessagePartsView } from "./MessageParts";
import { MockNotice } from "./MockNotice";
import { StatusLine } from "./StatusLine";
import { useStream } from "./useStream";

const LIVE = new Set<Status["state"]>(["connecting", "queued", "streaming", "reconnecting"]);

export function App() {
  const [saved] = useState(loadConversation);
  const [history, setHistory] = useState<Turn[]>(saved.history);
  const [prompt, setPrompt] = useState<string | null>(saved.prompt);
  const [model, setModel] = useState(saved.model);
  const [draft, setDraft] = useState("");
  const stream = useStream(saved.current);
  const { streamId, text, parts, lastSeq, ended, status } = stream;
  const live = status !== null && LIVE.has(status.state);

  // Pick up the stream the URL names: a reload, or the same link in another tab.
  const { resume } = stream;
  useEffect(() => {
    if (saved.current.streamId !== null) resume(saved.current);
  }, [saved, resume]);

  useEffect(() => {
    saveConversation({ history, prompt, model, current: { streamId, text, parts, lastSeq, ended, status } });
  }, [history, prompt, model, streamId, text, parts, lastSeq, ended, status]);

  function send(event: SyntheticEvent) {
    event.preventDefault();
    const next = draft.trim();
    if (next === "" || live) return;
    const turns = status === null ? history : [...history, { prompt, answer: text, parts, status }];
    setHistory(turns);
    setPrompt(next);
    setDraft("");
    stream.start({ messages: toMessages(turns, next), ...(model.trim() ? { model: model.trim() } : {}) });
  }

  function sendOnEnter(event: KeyboardEvent) {
    if (event.key === "Enter" && !event.shiftKey) send(event);
  }

  function reset() {
    stream.resume(EMPTY.current);
    setHistory([]);
    setPrompt(null);
  }

  return (
    <main>
      <header>
        <h1>spool</h1>
        <button type="button" onClick={reset} disabled={live} data-testid="new">
          New conversation
        </button>
      </header>
      <MockNotice />

      <section className="conversation" data-testid="conversation">
        {history.map((turn, i) => (
          <TurnView key={i} turn={turn} />
        ))}
        {status !== null && <TurnView turn={{ prompt, answer: text, parts, status }} seq={lastSeq} />}
      </section>

      <div className="controls">
        {status !== null && <StatusLine status={status} />}
        {stream.cancelError && <p className="notice" data-testid="notice">{stream.cancelError}</p>}
        {live && (
          <button type="button" onClick={stream.cancel} data-testid="stop">
            Stop
          </button>
        )}
      </div>

      <form onSubmit={send}>
        <textarea
          value={draft}
          onChange={(e) => setDraft(e.target.value)}
          onKeyDown={sendOnEnter}
          placeholder="Ask something (Enter sends, Shift+Enter for a new line)"
          rows={3}
          data-testid="prompt"
          aria-label="Prompt"
        />
        <div className="row">
          <label>
            model{" "}
            <input
              value={model}
              onChange={(e) => setModel(e.target.value)}
              placeholder="server default"
              data-testid="model"
            />
          </label>
          <button type="submit" disabled={live || draft.trim() === ""} data-testid="send">
            Send
          </button>
        </div>
      </form>
    </main>
  );
}

function TurnView({ turn, seq }: { turn: Turn; seq?: number }) {
  return (
    <article className="turn" data-testid="turn">
      {turn.prompt !== null && <p className="prompt">{turn.prompt}</p>}
      {turn.parts && <MessagePartsView parts={turn.parts} />}
      <div className="answer" data-testid="answer" data-raw={turn.answer} data-seq={seq} data-state={turn.status?.state}>
        <Markdown text={turn.answer} />
      </div>
    </article>
  );
}
