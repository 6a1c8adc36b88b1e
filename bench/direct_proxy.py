"""The baseline: a direct Flask proxy in the style of the original design.

No queue, no Redis, no resume: each request holds an upstream call (the openai
SDK, `stream=True`) for its whole life and relays the text as NDJSON lines
shaped like spool's (`delta`, then `done` or `error`). Served by gunicorn's
gevent worker: `gunicorn -k gevent 'bench.direct_proxy:create_app()'`.
"""

from __future__ import annotations

import json
import os

import openai
from flask import Flask, Response, jsonify, request


def create_app() -> Flask:
    """The proxy app; the upstream comes from OPENAI_BASE_URL / OPENAI_API_KEY."""
    app = Flask(__name__)
    client = openai.OpenAI(api_key=os.environ.get("OPENAI_API_KEY", "unset"), max_retries=0)

    @app.get("/healthz")
    def healthz():
        return jsonify(status="ok")

    @app.post("/v1/chat")
    def chat():
        body = request.get_json(force=True)
        params = {"model": body.get("model", "mock"), "messages": body["messages"], "stream": True}
        if body.get("max_tokens"):
            params["max_tokens"] = body["max_tokens"]
        stream = client.chat.completions.create(**params)

        def relay():
            finish = None
            try:
                for chunk in stream:
                    if chunk.choices:
                        choice = chunk.choices[0]
                        if choice.delta and choice.delta.content:
                            yield _line({"type": "delta", "text": choice.delta.content})
                        finish = choice.finish_reason or finish
                yield _line({"type": "done", "finish_reason": finish})
            except openai.OpenAIError as exc:
                yield _line({"type": "error", "code": "upstream_error", "message": type(exc).__name__})
            finally:
                stream.close()

        return Response(relay(), mimetype="application/x-ndjson")

    return app


def _line(obj: dict) -> bytes:
    return json.dumps(obj, ensure_ascii=False).encode() + b"\n"
