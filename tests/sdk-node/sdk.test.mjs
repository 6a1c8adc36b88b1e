// The official openai npm package against a running spool, unchanged except
// baseURL. tests/integration/test_openai_node.py starts the stack and sets
// SPOOL_BASE_URL and SPOOL_EXPECTED (prompt -> the mock's exact answer).
import assert from "node:assert/strict";
import test from "node:test";

import OpenAI from "openai";

const client = new OpenAI({ baseURL: `${process.env.SPOOL_BASE_URL}/v1`, apiKey: "unused", maxRetries: 0, timeout: 30_000 });
const expected = JSON.parse(process.env.SPOOL_EXPECTED);
const ask = (prompt) => [{ role: "user", content: prompt }];

test("streaming, with the usage chunk", async () => {
  const stream = await client.chat.completions.create({
    model: "mock", messages: ask("node stream"), stream: true, stream_options: { include_usage: true },
  });
  const chunks = [];
  for await (const chunk of stream) chunks.push(chunk);
  assert.equal(chunks[0].choices[0].delta.role, "assistant");
  const text = chunks.filter((c) => c.choices.length).map((c) => c.choices[0].delta.content ?? "").join("");
  assert.equal(text, expected["node stream"]);
  assert.deepEqual(chunks.filter((c) => c.choices[0]?.finish_reason).map((c) => c.choices[0].finish_reason), ["stop"]);
  const last = chunks.at(-1);
  assert.deepEqual(last.choices, []);
  assert.equal(last.usage.completion_tokens, 40);
  assert.ok(chunks.every((c) => c.id === chunks[0].id && c.id.startsWith("chatcmpl-")));
});

test("non-streaming", async () => {
  const completion = await client.chat.completions.create({ model: "mock", messages: ask("node whole") });
  assert.equal(completion.object, "chat.completion");
  assert.equal(completion.choices[0].message.content, expected["node whole"]);
  assert.equal(completion.choices[0].finish_reason, "stop");
  assert.equal(completion.usage.completion_tokens, 40);
});

test("a validation error is a BadRequestError naming the parameter", async () => {
  await assert.rejects(
    client.chat.completions.create({ model: "mock", messages: ask("x"), temperature: 9 }),
    (err) => err instanceof OpenAI.BadRequestError && err.status === 400 && err.param === "temperature"
      && err.type === "invalid_request_error",
  );
});

test("an upstream failure before the answer maps to its status", async () => {
  await assert.rejects(
    client.chat.completions.create({ model: "mock-429", messages: ask("x") }),
    (err) => err instanceof OpenAI.RateLimitError && err.code === "upstream_rate_limited",
  );
});

test("an error event mid-stream is thrown by the iterator", async () => {
  const stream = await client.chat.completions.create({ model: "mock-truncate", messages: ask("node cut"), stream: true });
  let text = "";
  await assert.rejects(
    (async () => { for await (const chunk of stream) text += chunk.choices[0]?.delta.content ?? ""; })(),
    (err) => err instanceof OpenAI.APIError && err.code === "upstream_truncated",
  );
  assert.ok(text.length > 0 && expected["node cut"].startsWith(text));
});

test("models", async () => {
  const models = [];
  for await (const model of client.models.list()) models.push(model.id);
  assert.deepEqual(models, ["mock"]);
});
