// Vercel's resumable-stream as a benchmark peer of spool (started by bench/resumable_peer.py).
//
// POST /v1/chat {model, messages, max_tokens?} reads the mock upstream's SSE stream
// (OPENAI_BASE_URL) with fetch and relays it through createResumableStreamContext as
// NDJSON lines shaped like spool's and the direct proxy's: {"type":"delta","text"},
// then {"type":"done","finish_reason"} or {"type":"error","code","message"}. The
// response's X-Stream-Id names the stream.
// GET /v1/chat/<id>/stream?skip=<n> resumes it after n characters (JavaScript string
// length: UTF-16 code units): 404 when unknown, 204 when the answer has already ended
// (the library keeps no finished answers; that is the application's job).
//
// Env: PORT, REDIS_URL, OPENAI_BASE_URL, OPENAI_API_KEY, KEY_PREFIX.

import http from "node:http";
import { randomUUID } from "node:crypto";
import { createClient } from "redis";
import { createResumableStreamContext } from "resumable-stream";

const port = Number(process.env.PORT);
const upstream = process.env.OPENAI_BASE_URL;
const apiKey = process.env.OPENAI_API_KEY || "unset";

// Our own clients rather than the library's defaults, so that a Redis error is
// logged instead of crashing the process through an unhandled "error" event.
const publisher = createClient({ url: process.env.REDIS_URL });
const subscriber = createClient({ url: process.env.REDIS_URL });
for (const client of [publisher, subscriber]) {
  client.on("error", (err) => console.error(`redis: ${err.message}`));
}
await Promise.all([publisher.connect(), subscriber.connect()]);
const streams = createResumableStreamContext({
  waitUntil: null, // a long-lived server: nothing to keep alive
  keyPrefix: process.env.KEY_PREFIX || "bench",
  publisher,
  subscriber,
});

const line = (event) => JSON.stringify(event) + "\n";

/** The upstream's answer as a stream of NDJSON lines, one per text chunk. */
function answer(body) {
  const params = { model: body.model || "mock", messages: body.messages, stream: true };
  if (body.max_tokens) params.max_tokens = body.max_tokens;
  return new ReadableStream({
    async start(controller) {
      try {
        const response = await fetch(`${upstream}/chat/completions`, {
          method: "POST",
          headers: { "Content-Type": "application/json", Authorization: `Bearer ${apiKey}` },
          body: JSON.stringify(params),
        });
        if (!response.ok) throw new Error(`upstream answered HTTP ${response.status}`);
        const decoder = new TextDecoder();
        let buffered = "";
        let finish = null;
        let ended = false;
        for await (const bytes of response.body) {
          buffered += decoder.decode(bytes, { stream: true });
          let end;
          while (!ended && (end = buffered.indexOf("\n")) >= 0) {
            const frame = buffered.slice(0, end).trim();
            buffered = buffered.slice(end + 1);
            if (!frame.startsWith("data:")) continue;
            const data = frame.slice(5).trim();
            if (data === "[DONE]") {
              ended = true;
              break;
            }
            const choice = (JSON.parse(data).choices || [])[0] || {};
            const text = choice.delta && choice.delta.content;
            if (text) controller.enqueue(line({ type: "delta", text }));
            finish = choice.finish_reason || finish;
          }
          if (ended) break;
        }
        if (!ended) throw new Error("upstream ended without [DONE]");
        controller.enqueue(line({ type: "done", finish_reason: finish }));
      } catch (err) {
        console.error(`upstream: ${err.message}`);
        controller.enqueue(line({ type: "error", code: "upstream_error", message: err.name }));
      }
      controller.close();
    },
  });
}

/** Write `stream` to `res` until it ends or the client goes away. */
async function relay(stream, res, headers) {
  res.writeHead(200, { "Content-Type": "application/x-ndjson", ...headers });
  res.flushHeaders();
  const reader = stream.getReader();
  // A client that drops cancels only its reader: the library goes on reading
  // the upstream so that a resume finds the whole answer.
  res.on("close", () => reader.cancel().catch(() => {}));
  try {
    for (;;) {
      const { done, value } = await reader.read();
      if (done) break;
      if (value) res.write(value);
    }
  } catch (err) {
    console.error(`relay: ${err.message}`);
  }
  res.end();
}

function fail(res, status, code, message) {
  res.writeHead(status, { "Content-Type": "application/json" });
  res.end(JSON.stringify({ error: { code, message } }));
}

async function readJson(req) {
  const parts = [];
  for await (const part of req) parts.push(part);
  return JSON.parse(Buffer.concat(parts).toString("utf8"));
}

async function handle(req, res) {
  const url = new URL(req.url, "http://peer");
  if (req.method === "GET" && url.pathname === "/healthz") {
    res.writeHead(200, { "Content-Type": "application/json" });
    return res.end('{"status":"ok"}');
  }
  if (req.method === "POST" && url.pathname === "/v1/chat") {
    let body;
    try {
      body = await readJson(req);
    } catch {
      return fail(res, 400, "invalid_json", "the body is not JSON");
    }
    if (!Array.isArray(body.messages)) return fail(res, 400, "invalid_request", "messages must be a list");
    const id = randomUUID();
    const stream = await streams.createNewResumableStream(id, () => answer(body));
    return relay(stream, res, { "X-Stream-Id": id });
  }
  const resume = /^\/v1\/chat\/([0-9a-f-]{36})\/stream$/.exec(url.pathname);
  if (req.method === "GET" && resume) {
    const skip = Number(url.searchParams.get("skip") || "0");
    if (!Number.isInteger(skip) || skip < 0) return fail(res, 400, "invalid_skip", "skip must be a whole number");
    const stream = await streams.resumeExistingStream(resume[1], skip);
    if (stream === undefined) return fail(res, 404, "not_found", "no such stream");
    if (stream === null) {
      res.writeHead(204);
      return res.end();
    }
    return relay(stream, res, { "X-Stream-Id": resume[1] });
  }
  return fail(res, 404, "not_found", "no such route");
}

const server = http.createServer((req, res) => {
  handle(req, res).catch((err) => {
    console.error(`request: ${err.stack || err.message}`);
    if (!res.headersSent) fail(res, 500, "internal", err.name);
    else res.end();
  });
});
server.listen(port, "127.0.0.1", () => console.log(`resumable-stream peer on 127.0.0.1:${port}`));
process.on("SIGTERM", () => process.exit(0));
