// useChat against spool. Compared with a stock AI SDK app, three lines differ
// (README, "Using the AI SDK's useChat"): the transport's `api`, `resume: true`,
// and Stop calling spool's stop route (so the answer stops server-side, for
// every tab, instead of only this fetch).
import { useChat } from "@ai-sdk/react";
import { DefaultChatTransport, type UIMessage } from "ai";
import { useEffect, useMemo, useRef, useState } from "react";

import { chatIdFromUrl, loadMessages, saveMessages } from "./storage";

const API = "/v1/ui/chat";
// With ?tools=1 the request offers one tool (spool forwards `tools` to the model).
const TOOLS = [{
  type: "function",
  function: {
    name: "get_weather",
    description: "The weather in a city",
    parameters: { type: "object", properties: { city: { type: "string" } }, required: ["city"] },
  },
}];
const offerTools = new URL(window.location.href).searchParams.get("tools") === "1";

export function App() {
  const chatId = useMemo(chatIdFromUrl, []);
  const initial = useMemo(() => loadMessages(chatId), [chatId]);
  const [model, setModel] = useState(() => new URL(window.location.href).searchParams.get("model") ?? "");
  const [input, setInput] = useState("");
  // useChat keeps the transport it was first given: read the model at send time.
  const modelRef = useRef(model);
  modelRef.current = model;
  const transport = useMemo(
    () => new DefaultChatTransport({
      api: API,
      body: () => ({ ...(modelRef.current ? { model: modelRef.current } : {}), ...(offerTools ? { tools: TOOLS } : {}) }),
    }),
    [],
  );
  const { messages, sendMessage, status, error, resumeStream } = useChat({
    id: chatId,
    messages: initial,
    transport,
    resume: true,
    onError: (err) => {
      // spool ran the answer again (a lost worker, a failed model) after text
      // was shown: the replay renders the rerun in place of this message.
      if (err.message.includes("reconnect")) setTimeout(() => void resumeStream(), 0);
    },
  });

  useEffect(() => saveMessages(chatId, messages), [chatId, messages]);

  const busy = status === "submitted" || status === "streaming";
  const stop = () => fetch(`${API}/${encodeURIComponent(chatId)}/stop`, { method: "POST" });

  return (
    <main style={{ maxWidth: 720, margin: "2rem auto", fontFamily: "system-ui, sans-serif" }}>
      <h1>useChat on spool</h1>
      <p data-testid="status" data-state={status}>{status}</p>
      {error && <p data-testid="error" role="alert">{error.message}</p>}
      <ol data-testid="messages" style={{ listStyle: "none", padding: 0 }}>
        {messages.map((message) => <Message key={message.id} message={message} />)}
      </ol>
      <form
        onSubmit={(e) => {
          e.preventDefault();
          if (!input.trim() || busy) return;
          void sendMessage({ text: input });
          setInput("");
        }}
      >
        <input data-testid="model" placeholder="model (optional)" value={model}
          onChange={(e) => setModel(e.target.value)} />
        <input data-testid="prompt" placeholder="Ask something" value={input}
          onChange={(e) => setInput(e.target.value)} />
        <button data-testid="send" type="submit" disabled={busy}>Send</button>
        <button data-testid="stop" type="button" disabled={!busy} onClick={() => void stop()}>Stop</button>
      </form>
    </main>
  );
}

function Message({ message }: { message: UIMessage }) {
  return (
    <li data-testid={`message-${message.role}`} data-id={message.id}>
      <strong>{message.role}</strong>
      {message.parts.map((part, i) => {
        if (part.type === "text") {
          return <p key={i} data-testid="text-part" data-state={part.state}>{part.text}</p>;
        }
        if (part.type === "reasoning") {
          return <details key={i} data-testid="reasoning-part"><summary>reasoning</summary>{part.text}</details>;
        }
        if (part.type.startsWith("tool-") || part.type === "dynamic-tool") {
          const tool = part as { type: string; toolName?: string; state: string; input?: unknown };
          const name = tool.toolName ?? tool.type.slice("tool-".length);
          return (
            <pre key={i} data-testid="tool-part" data-tool={name} data-state={tool.state}>
              {name}({JSON.stringify(tool.input)})
            </pre>
          );
        }
        return null;
      })}
    </li>
  );
}
