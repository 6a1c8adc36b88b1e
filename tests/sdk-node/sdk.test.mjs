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

// Whole messages: the same answer through spool as straight from the upstream.
const upstream = new OpenAI({ baseURL: process.env.SPOOL_UPSTREAM_URL, apiKey: "unused", maxRetries: 0, timeout: 30_000 });
const weatherTool = (calls) => ({
  type: "function",
  function: {
    name: "get_weather",
    description: "The weather in a city",
    parameters: { type: "object", properties: { city: { type: "string" } }, required: ["city"], additionalProperties: false },
    parse: JSON.parse,
    function: (args) => { calls.push(args); return `sunny in ${args.city}`; },
  },
});

test("runTools: a streamed tool loop ends with the upstream's own messages", async () => {
  const run = async (sdk) => {
    const calls = [];
    const runner = sdk.chat.completions.runTools({
      model: "mock", messages: ask("node tool loop"), tools: [weatherTool(calls)], stream: true,
    });
    const content = await runner.finalContent();
    return { calls, content, messages: runner.messages };
  };
  const through = await run(client);
  const direct = await run(upstream);
  assert.equal(through.calls.length, 1);
  assert.ok(typeof through.calls[0].city === "string" && through.calls[0].city.length > 0);
  assert.ok(through.content.length > 0);
  assert.deepEqual(through, direct);
  assert.deepEqual(through.messages.map((m) => m.role), ["user", "assistant", "tool", "assistant"]);
});

test("ChatCompletionStream: reasoning and the final completion match the upstream's", async () => {
  const final = async (sdk) => {
    const stream = sdk.chat.completions.stream({
      model: "mock-reasoning", messages: ask("node reasoning"), stream_options: { include_usage: true },
    });
    // This SDK keeps only the last fragment of a field it does not know
    // (reasoning_content), so the reasoning is read from the chunks.
    let reasoning = "";
    stream.on("chunk", (chunk) => { reasoning += chunk.choices[0]?.delta.reasoning_content ?? ""; });
    const completion = await stream.finalChatCompletion();
    const { reasoning_content: _, ...message } = completion.choices[0].message;
    return { reasoning, message, finish: completion.choices[0].finish_reason, usage: completion.usage };
  };
  const through = await final(client);
  assert.ok(through.reasoning.length > 0 && through.message.content.length > 0);
  assert.deepEqual(through, await final(upstream));
});
