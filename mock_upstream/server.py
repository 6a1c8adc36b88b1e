"""An OpenAI-compatible chat completions server with deterministic answers.

Used by the tests, the benchmarks and the no-key demo. The answer to a last
user message `prompt` with `tokens` tokens is `expected_text(prompt, tokens)`
(mock_upstream/answers.py).
The model name selects a fault to inject:

    mock-error     HTTP 500 before any token
    mock-429       HTTP 429 with Retry-After before any token
    mock-truncate  half the tokens, then the connection ends with no finish reason
    mock-corrupt   half the tokens, then an unparseable chunk
    mock-stall     half the tokens, then silence for an hour
    mock-drop      half the tokens, then the connection breaks mid-response
    mock-<fault>-once  that fault on the first request for a prompt only
    mock-reasoning reasoning deltas before the answer (also with `reasoning_effort`)
    mock-refusal   a refusal instead of an answer
    anything else  the full answer; `max_tokens` below it ends with "length"

Offered `tools`, it calls one (finish_reason `tool_calls`) unless the last
message is a `tool` result; `logprobs: true` adds logprobs. See
mock_upstream/answers.py.

GET /_mock/stats lists every request with how many tokens were sent and
whether it finished or the client aborted it.
"""

from __future__ import annotations

import collections
import itertools
import json
import socket
import threading
import time
from dataclasses import asdict, dataclass
from typing import Any

from flask import Flask, Response, jsonify, request

from mock_upstream import answers
from mock_upstream.answers import answer_tokens

@dataclass
class MockConfig:
    """Timing and length of the mock's answers."""

    ttft_ms: float = 100.0
    tokens_per_second: float = 50.0
    tokens: int = 200


@dataclass
class RequestRecord:
    """What the mock saw of one request."""

    id: int
    model: str
    prompt: str
    stream: bool
    client_port: int  # tells connections apart: an HTTP client that reuses one sends the same
    tokens_sent: int = 0
    finished: bool = False
    aborted: bool = False


def create_app(config: MockConfig) -> Flask:
    """The mock's WSGI app."""
    app = Flask(__name__)
    records: list[RequestRecord] = []
    lock = threading.Lock()
    ids = itertools.count(1)
    seen: collections.Counter[tuple[str, str]] = collections.Counter()

    @app.get("/healthz")
    def healthz():
        return jsonify(status="ok")

    @app.get("/v1/models")
    def models():
        return jsonify(object="list", data=[{"id": "mock", "object": "model", "created": 0, "owned_by": "spool"}])

    @app.get("/_mock/stats")
    def stats():
        with lock:
            return jsonify([asdict(r) for r in records])

    @app.post("/v1/chat/completions")
    def chat_completions():
        body = request.get_json(force=True)
        model = body.get("model", "mock")
        prompt = _last_user_message(body.get("messages", []))
        record = RequestRecord(next(ids), model, prompt, bool(body.get("stream")), int(request.environ["REMOTE_PORT"]))
        with lock:
            records.append(record)
            seen[(model, prompt)] += 1
            first_time = seen[(model, prompt)] == 1
        fault = model.removesuffix("-once") if first_time or not model.endswith("-once") else None
        time.sleep(config.ttft_ms / 1000)
        if fault == "mock-error":
            record.finished = True
            return _error(500, "server_error", "mock failure")
        if model == "mock-auth":
            # Like the real API, echo the refused key in the body: the worker
            # must summarise it away (tests/integration/test_secrets.py).
            record.finished = True
            key = request.headers.get("Authorization", "").removeprefix("Bearer ")
            return _error(401, "invalid_api_key", f"Incorrect API key provided: {key}")
        if fault == "mock-429":
            record.finished = True
            response = _error(429, "rate_limit_exceeded", "mock rate limit")
            response.headers["Retry-After"] = "1"
            return response
        limit = body.get("max_tokens") or body.get("max_completion_tokens") or config.tokens
        tokens = answer_tokens(prompt, min(limit, config.tokens))
        answer = answers.plan(body, model, prompt, tokens, "length" if limit < config.tokens else "stop")
        sent = len(answer.fragments)
        usage = {"prompt_tokens": len(prompt.split()), "completion_tokens": sent,
                 "total_tokens": len(prompt.split()) + sent, **answer.usage_details}
        if not record.stream:
            time.sleep(sent / config.tokens_per_second)
            record.tokens_sent, record.finished = sent, True
            return jsonify(_completion(model, answer, usage))
        include_usage = bool((body.get("stream_options") or {}).get("include_usage"))
        events = _stream(config, record, answer, usage if include_usage else None, fault)
        return Response(events, mimetype="text/event-stream")

    return app


def _stream(config: MockConfig, record: RequestRecord, answer: answers.Plan, usage: Any, fault: str | None):
    if fault not in ("mock-truncate", "mock-corrupt", "mock-stall", "mock-drop"):
        fault = None
    fragments = answer.fragments
    cut = len(fragments) // 2 if fault else None
    gap = 1 / config.tokens_per_second
    extra = answer.chunk_fields
    try:
        yield _sse({**_chunk(record.model, answer.role_delta, None), **extra})
        for i, fragment in enumerate(fragments):
            if i == cut:
                if fault == "mock-corrupt":
                    yield b"data: {not json\n\n"
                elif fault == "mock-stall":
                    time.sleep(3600)
                elif fault == "mock-drop":
                    record.finished = True
                    raise ConnectionAbortedError("mock-drop: breaking the response mid-stream")
                record.finished = True
                return
            if i:
                time.sleep(gap)
            chunk = _chunk(record.model, fragment["delta"], None)
            if "logprobs" in fragment:
                chunk["choices"][0]["logprobs"] = fragment["logprobs"]
            yield _sse({**chunk, **extra})
            record.tokens_sent += 1
        yield _sse({**_chunk(record.model, {}, answer.finish_reason), **extra})
        if usage is not None:
            tier = {"service_tier": answer.service_tier} if answer.service_tier else {}
            yield _sse({**_chunk(record.model, None, None), **extra, **tier, "choices": [], "usage": usage})
        yield b"data: [DONE]\n\n"
        record.finished = True
    finally:
        # Closed before the end: the client went away.
        record.aborted = not record.finished


def _sse(obj: dict[str, Any]) -> bytes:
    return b"data: " + json.dumps(obj, ensure_ascii=False).encode() + b"\n\n"


def _chunk(model: str, delta: dict[str, Any] | None, finish_reason: str | None) -> dict[str, Any]:
    choices = [] if delta is None else [{"index": 0, "delta": delta, "finish_reason": finish_reason}]
    return {"id": "chatcmpl-mock", "object": "chat.completion.chunk", "created": int(time.time()),
            "model": model, "choices": choices}


def _completion(model: str, answer: answers.Plan, usage: dict[str, Any]) -> dict[str, Any]:
    message = {k: v for k, v in answer.message.items() if k != "logprobs"}
    body = {"id": "chatcmpl-mock", "object": "chat.completion", "created": int(time.time()), "model": model,
            "choices": [{"index": 0, "message": message, "finish_reason": answer.finish_reason,
                         **({"logprobs": answer.message["logprobs"]} if "logprobs" in answer.message else {})}],
            "usage": usage, **answer.chunk_fields}
    if answer.service_tier:
        body["service_tier"] = answer.service_tier
    return body


def _error(status: int, type_: str, message: str) -> Response:
    response = jsonify(error={"message": message, "type": type_, "code": type_})
    response.status_code = status
    return response


def _last_user_message(messages: list[dict[str, Any]]) -> str:
    for message in reversed(messages):
        if message.get("role") == "user":
            return str(message.get("content", ""))
    return ""


def serve(host: str, port: int, config: MockConfig) -> None:
    """Serve the mock with gevent's WSGI server (the caller has monkey-patched)."""
    from gevent.pywsgi import WSGIServer

    print(f"mock upstream on http://{host}:{port}/v1 "
          f"(ttft {config.ttft_ms:g} ms, {config.tokens_per_second:g} tokens/s, {config.tokens} tokens)", flush=True)
    class NoDelayServer(WSGIServer):
        # Without TCP_NODELAY the first token waits ~40 ms behind the role
        # chunk (Nagle against the client's delayed ACK) for some clients.
        def handle(self, sock, address):
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            return super().handle(sock, address)

    NoDelayServer((host, port), create_app(config), log=None).serve_forever()
