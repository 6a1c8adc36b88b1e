// The `ai` package's DefaultChatTransport against a running spool, pointed at
// /v1/ui/chat and nothing else changed. tests/integration/test_ai_sdk_node.py
// starts the stack and sets SPOOL_BASE_URL, SPOOL_MOCK_URL and SPOOL_EXPECTED
// (prompt -> the mock's exact answer).
import assert from "node:assert/strict";
import test from "node:test";

import { DefaultChatTransport, readUIMessageStream } from "ai";

const base = process.env.SPOOL_BASE_URL;
const expected = JSON.parse(process.env.SPOOL_EXPECTED);
const seenHeaders = [];
const transport = new DefaultChatTransport({
  api: `${base}/v1/ui/chat`,
  // Only to look at the response headers; the requests are the transport's own.
  fetch: async (url, init) => {
    const response = await fetch(url, init);
    seenHeaders.push(response.headers);
    return response;
  },
});

let chats = 0;
const newChatId = () => `node-${process.pid}-${++chats}`;
const userMessage = (text) => ({ id: `u-${chats}`, role: "user", parts: [{ type: "text", text }] });

function send(chatId, prompt, { body, abortSignal } = {}) {
  return transport.sendMessages({
    chatId, messages: [userMessage(prompt)], trigger: "submit-message", messageId: undefined,
    abortSignal, body,
  });
}

// Every chunk of a stream (the transport has validated each against its schema).
async function readAll(stream) {
  const chunks = [];
  for await (const chunk of stream) chunks.push(chunk);
  return chunks;
}

// The assistant message the AI SDK builds from the chunks, and any error it raised.
async function assemble(stream) {
  let message;
  let error;
  try {
    for await (const snapshot of readUIMessageStream({ stream, terminateOnError: true })) message = snapshot;
  } catch (err) {
    error = err;
  }
  return { message, error };
}

const textOf = (message) => message.parts.filter((p) => p.type === "text").map((p) => p.text).join("");
const deltas = (chunks) => chunks.filter((c) => c.type === "text-delta").map((c) => c.delta).join("");

// Reads until `n` text deltas arrived, then hands back the rest of the stream.
async function readDeltas(stream, n) {
  const reader = stream.getReader();
  const head = [];
  while (head.filter((c) => c.type === "text-delta").length < n) {
    const { value, done } = await reader.read();
    assert.ok(!done, "the stream ended early");
    head.push(value);
  }
  return { head, reader };
}

test("send: the whole answer, exactly, as one message", async () => {
  const chatId = newChatId();
  const { message, error } = await assemble(await send(chatId, "ui send", { body: { model: "mock", temperature: 0.2 } }));
  assert.equal(error, undefined);
  assert.equal(seenHeaders.at(-1).get("x-vercel-ai-ui-message-stream"), "v1");
  assert.equal(message.role, "assistant");
  assert.equal(message.id, seenHeaders.at(-1).get("x-stream-id"));
  assert.equal(textOf(message), expected["ui send"]);
  assert.deepEqual(message.parts.map((p) => p.type), ["step-start", "text"]);
  assert.equal(message.parts[1].state, "done");
});

test("reconnect mid-answer: a full replay, live to the end, text exactly once", async () => {
  const chatId = newChatId();
  const abort = new AbortController();
  const { head } = await readDeltas(await send(chatId, "ui resume", { abortSignal: abort.signal }), 2);
  abort.abort(); // the page went away; the answer goes on
  assert.ok(deltas(head).length > 0);
  const { message, error } = await assemble(await transport.reconnectToStream({ chatId }));
  assert.equal(error, undefined);
  assert.equal(textOf(message), expected["ui resume"]);
});

test("reconnect after the end: the whole answer; Last-Event-ID gives the rest", async () => {
  const chatId = newChatId();
  const sent = await readAll(await send(chatId, "ui after"));
  const replayed = await readAll(await transport.reconnectToStream({ chatId }));
  assert.deepEqual(replayed, sent);
  assert.equal(deltas(replayed), expected["ui after"]);
  assert.equal(replayed.at(-1).type, "finish");
  assert.equal(replayed.at(-1).finishReason, "stop");
  const rest = await readAll(await transport.reconnectToStream({ chatId, headers: { "Last-Event-ID": "3" } }));
  assert.equal(rest[0].type, "text-delta");
  assert.ok(expected["ui after"].endsWith(deltas(rest)) && deltas(rest).length < expected["ui after"].length);
  assert.equal(await transport.reconnectToStream({ chatId: newChatId() }), null, "no stream: 204 -> null");
});

test("stop: the answer stops server-side and every reader ends with abort", async () => {
  const chatId = newChatId();
  // mock-stall sends half the answer, then nothing until it is cancelled.
  const first = await readDeltas(await send(chatId, "ui stop", { body: { model: "mock-stall" } }), 1);
  const second = await readDeltas(await transport.reconnectToStream({ chatId }), 1);
  const response = await fetch(`${base}/v1/ui/chat/${chatId}/stop`, { method: "POST" });
  assert.equal(response.status, 200);
  assert.equal((await response.json()).status, "cancelled");
  for (const { head, reader } of [first, second]) {
    const chunks = [...head];
    for (let r = await reader.read(); !r.done; r = await reader.read()) chunks.push(r.value);
    assert.equal(chunks.at(-1).type, "abort");
    assert.equal(chunks.at(-2).type, "text-end");
  }
  const after = await readAll(await transport.reconnectToStream({ chatId }));
  assert.equal(after.at(-1).type, "abort", "a resume after the stop ends with abort too");
});

test("a rerun after the model failed mid-answer: never duplicated text", async () => {
  const chatId = newChatId();
  // mock-truncate-once: the first run stops half-way, spool runs it again (reset).
  const live = await assemble(await send(chatId, "ui reset", { body: { model: "mock-truncate-once" } }));
  assert.match(String(live.error?.message), /restarted \(upstream_truncated\)/);
  assert.ok(expected["ui reset"].startsWith(textOf(live.message)));
  const { message, error } = await assemble(await transport.reconnectToStream({ chatId }));
  assert.equal(error, undefined);
  assert.equal(textOf(message), expected["ui reset"]);
  assert.equal(message.id, live.message.id, "the replay replaces the message it began");
});

test("bad input is a JSON 4xx the transport raises", async () => {
  await assert.rejects(send("bad id!", "x"), /invalid_chat_id/);
  await assert.rejects(send(newChatId(), "x", { body: { temperature: 9 } }), /temperature/);
});

// spool/ui_wire.py's frames for the whole-message events (reasoning, tool
// calls), as the Python test encoded them, read by the real transport.
const encoded = JSON.parse(process.env.SPOOL_ENCODED ?? "{}");
const replaying = (body) => new DefaultChatTransport({
  api: "http://spool.invalid/v1/ui/chat",
  fetch: async () => new Response(body, { headers: { "content-type": "text/event-stream" } }),
});

test("reasoning, text and tool calls become the AI SDK's parts", async () => {
  const stream = await replaying(encoded.tools).sendMessages({
    chatId: "c", messages: [userMessage("x")], trigger: "submit-message", messageId: undefined,
  });
  const { message, error } = await assemble(stream);
  assert.equal(error, undefined);
  assert.equal(message.id, "stream-id");
  assert.deepEqual(message.parts.map((p) => [p.type, p.state]), [
    ["step-start", undefined], ["reasoning", "done"], ["text", "done"],
    ["tool-get_weather", "input-available"], ["tool-get_time", "output-error"], // how the AI SDK shows input that did not parse
  ]);
  assert.equal(message.parts[1].text, "Thinking it over.");
  assert.equal(message.parts[2].text, "Let me look that up.");
  assert.equal(message.parts[3].toolCallId, "call_1");
  assert.deepEqual(message.parts[3].input, { city: "Paris", days: [1, 2] });
  assert.equal(message.parts[4].errorText, "the tool call's arguments are not valid JSON");
});

test("a cancelled answer: abort after the closed part", async () => {
  const chunks = await readAll(await replaying(encoded.cancelled).sendMessages({
    chatId: "c", messages: [userMessage("x")], trigger: "submit-message", messageId: undefined,
  }));
  assert.deepEqual(chunks.map((c) => c.type), ["start", "start-step", "text-start", "text-delta", "text-end", "abort"]);
});
