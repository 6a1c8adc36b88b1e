"""A tiny OpenAI-compatible upstream that records every request it receives.

Tests point spool (or worker/upstream.py alone) at it to assert on exactly
what an upstream received: the JSON body as parsed and the headers. It answers
a short streamed text answer, or the error set with `fail(status, body)`.
Loopback only, on a free port, stopped by the test (a context manager).
"""

from __future__ import annotations

import gzip
import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

ANSWER = ["Hel", "lo"]


class CaptureUpstream:
    """`url` is the base URL (…/v1); `requests` the bodies received, in order."""

    def __init__(self) -> None:
        self.requests: list[dict[str, Any]] = []
        self.headers: list[dict[str, str]] = []
        self.received = threading.Event()
        self._error: tuple[int, dict[str, Any]] | None = None
        self.gzip = False  # answer with a gzip-encoded body
        owner = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self) -> None:  # noqa: N802 (http.server's name)
                length = int(self.headers.get("Content-Length", 0))
                owner.requests.append(json.loads(self.rfile.read(length)))
                owner.headers.append({k.lower(): v for k, v in self.headers.items()})
                owner.received.set()
                if owner._error is not None:
                    status, body = owner._error
                    self._send(status, "application/json", json.dumps(body).encode())
                    return
                self._send(200, "text/event-stream", b"".join(_frames(owner.requests[-1].get("model", "m"))))

            def _send(self, status: int, mimetype: str, payload: bytes) -> None:
                self.send_response(status)
                self.send_header("Content-Type", mimetype)
                if owner.gzip:
                    payload = gzip.compress(payload)
                    self.send_header("Content-Encoding", "gzip")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            def log_message(self, *args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self._server.server_port}/v1"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    def fail(self, status: int, body: dict[str, Any]) -> None:
        """Answer every later request with this HTTP error."""
        self._error = (status, body)

    def answer(self) -> None:
        """Answer later requests normally again."""
        self._error = None

    def __enter__(self) -> CaptureUpstream:
        self._thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self._server.shutdown()
        self._server.server_close()


def _frames(model: str) -> list[bytes]:
    def frame(delta: dict[str, Any] | None, finish: str | None = None, usage: Any = None) -> bytes:
        choices = [] if delta is None else [{"index": 0, "delta": delta, "finish_reason": finish}]
        obj = {"id": "chatcmpl-capture", "object": "chat.completion.chunk", "created": 1, "model": model,
               "choices": choices, "usage": usage}
        return b"data: " + json.dumps(obj).encode() + b"\n\n"

    return [
        frame({"role": "assistant", "content": ""}),
        *(frame({"content": text}) for text in ANSWER),
        frame({}, "stop"),
        frame(None, usage={"prompt_tokens": 3, "completion_tokens": 2, "total_tokens": 5}),
        b"data: [DONE]\n\n",
    ]


PNG = "data:image/png;base64,iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9awAAAABJRU5ErkJggg=="
WEATHER_TOOL = {"type": "function", "function": {
    "name": "get_weather", "description": "The weather in a city", "strict": True,
    "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"],
                   "additionalProperties": False}}}
# Every message shape and every parameter spool forwards, plus one it does not know.
MESSAGES = [
    {"role": "developer", "content": "Answer briefly."},
    {"role": "system", "content": [{"type": "text", "text": "You are spool's test."}], "name": "sys"},
    {"role": "user", "name": "ann", "content": [
        {"type": "text", "text": "What is in this image, and the weather in Paris?"},
        {"type": "image_url", "image_url": {"url": PNG, "detail": "low"}},
        {"type": "image_url", "image_url": {"url": "https://example.com/cat.png"}},
        {"type": "input_audio", "input_audio": {"data": "UklGRg==", "format": "wav"}},
        {"type": "file", "file": {"filename": "a.pdf", "file_data": "data:application/pdf;base64,JVBERi0="}},
    ]},
    {"role": "assistant", "content": None, "refusal": None, "tool_calls": [
        {"id": "call_1", "type": "function", "function": {"name": "get_weather", "arguments": "{\"city\":\"Paris\"}"}},
        {"id": "call_2", "type": "custom", "custom": {"name": "shell", "input": "ls"}},
    ]},
    {"role": "tool", "tool_call_id": "call_1", "content": "sunny"},
    {"role": "tool", "tool_call_id": "call_2", "content": [{"type": "text", "text": "a.txt"}]},
]
PARAMS = {
    "tools": [WEATHER_TOOL, {"type": "custom", "custom": {"name": "shell", "description": "runs a command",
                                                           "format": {"type": "text"}}}],
    "tool_choice": {"type": "function", "function": {"name": "get_weather"}},
    "parallel_tool_calls": False,
    "response_format": {"type": "json_schema", "json_schema": {
        "name": "answer", "strict": True,
        "schema": {"type": "object", "properties": {"text": {"type": "string"}}, "required": ["text"],
                   "additionalProperties": False}}},
    "temperature": 0.5, "top_p": 0.9, "stop": ["\n\n", "END"], "seed": 7,
    "presence_penalty": 0.1, "frequency_penalty": -0.2, "logit_bias": {"50256": -100},
    "logprobs": True, "top_logprobs": 3, "max_tokens": 50, "max_completion_tokens": 60,
    "reasoning_effort": "low", "verbosity": "low",
    "prediction": {"type": "content", "content": "It is sunny."},
    "metadata": {"suite": "spool"}, "store": False, "service_tier": "auto", "user": "u-1",
    "safety_identifier": "s-1", "prompt_cache_key": "k-1", "modalities": ["text"], "n": 1,
    # Not known to spool: forwarded as sent (SPOOL_FORWARD_UNKNOWN_PARAMS=1).
    "future_param": {"nested": [1, {"x": None}]},
}
