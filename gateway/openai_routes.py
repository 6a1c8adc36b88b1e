"""The OpenAI-compatible routes: POST /v1/chat/completions and GET /v1/models.

A completion is an ordinary spool stream (same store, queue and tail), so it
can be resumed with GET /v1/streams/<id>/events?format=openai&after=<seq>.
Errors on these routes use OpenAI's shape
`{"error": {"message", "type", "param", "code"}}`.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Iterator
from typing import Any

from flask import Blueprint, Response, jsonify, request

from gateway import metrics
from gateway.errors import render_openai
from gateway.intake import queue_stream
from gateway.openai_request import parse_completion_request
from gateway.services import Services, services
from gateway.validation import read_json_body
from spool.events import StreamStatus
from spool.keys import new_stream_id
from spool.openai_wire import ERROR_STATUS, ChunkContext, completion, completion_id, encode_openai, error_body
from spool.tail import events
from spool.wire import WireFormat

log = logging.getLogger(__name__)

openai_api = Blueprint("openai", __name__)

# Sent when the tail lost Redis before the end: the SDK raises it, and the
# client may resume with the last `id:` it saw.
INTERRUPTED = b'data: {"error":{"message":"the stream was interrupted; resume with after=<last id>",' \
              b'"type":"server_error","param":null,"code":"stream_interrupted"}}\n\n'


@openai_api.get("/v1/models")
def list_models():
    s = services()
    return jsonify(object="list", data=[
        {"id": model, "object": "model", "created": 0, "owned_by": "spool"} for model in s.settings.model_ids
    ])


@openai_api.post("/v1/chat/completions")
def chat_completions():
    s = services()
    parsed = parse_completion_request(read_json_body(request, s.settings), s.settings)
    stream_id = new_stream_id()
    queue_stream(stream_id, parsed.chat, "openai")
    log.info("completion queued", extra={"model": parsed.chat["model"], "stream": parsed.stream})
    ctx = ChunkContext(completion_id(stream_id), parsed.chat["model"], int(time.time()), parsed.include_usage)
    if parsed.stream:
        return openai_stream_response(s, stream_id, 0, ctx)
    return _wait_for_completion(s, stream_id, ctx)


def openai_events_response(stream_id: str, after: int, meta: dict[str, str]) -> Response:
    """The events route in the `openai` format (called by gateway/routes.py)."""
    s = services()
    include_usage = request.args.get("include_usage", "").lower() in ("1", "true")
    ctx = ChunkContext(completion_id(stream_id), meta.get("model", ""), int(float(meta["created_at"])), include_usage)
    if StreamStatus(meta["status"]).is_terminal and after >= int(meta["last_seq"]):
        return _sse_response(stream_id, iter([WireFormat.OPENAI.preamble]))
    return openai_stream_response(s, stream_id, after, ctx)


def openai_stream_response(s: Services, stream_id: str, after: int, ctx: ChunkContext) -> Response:
    """A live chat.completion.chunk stream from just after seq `after`."""
    return _sse_response(stream_id, metrics.tracked(_follow(s, stream_id, after, ctx), "openai", after))


def _follow(s: Services, stream_id: str, after: int, ctx: ChunkContext) -> Iterator[bytes]:
    # Runs after the request context is gone: everything comes in as arguments.
    yield WireFormat.OPENAI.preamble
    sent_text = False
    for event in events(s.store, s.hub, stream_id, after, s.settings.heartbeat_interval):
        if event is None:
            yield WireFormat.OPENAI.heartbeat
            continue
        if event.type == b"reset" and not sent_text:
            continue  # nothing to take back yet: the rerun's text simply follows
        sent_text = sent_text or event.type == b"delta"
        yield encode_openai(ctx, event.seq, event.type, event.data)
        if event.is_terminal or event.type == b"reset":
            return
    yield INTERRUPTED


def _wait_for_completion(s: Services, stream_id: str, ctx: ChunkContext) -> Response:
    parts: list[str] = []
    for event in events(s.store, s.hub, stream_id, 0, s.settings.heartbeat_interval):
        if event is None:
            continue
        fields = json.loads(event.data)
        if event.type == b"delta":
            parts.append(fields["text"])
        elif event.type == b"reset":
            parts = []
        elif event.type == b"done":
            response = jsonify(completion(ctx, "".join(parts), fields["finish_reason"], fields.get("usage")))
            response.headers["X-Stream-Id"] = stream_id
            return response
        elif event.type == b"error":
            return _error(ERROR_STATUS.get(fields["code"], (500, ""))[0], error_body(fields["code"], fields["message"]))
        elif event.type == b"cancelled":
            return _error(409, error_body("cancelled", "the generation was cancelled"))
    return _error(503, error_body("stream_interrupted", "the stream store was lost; retry", "server_error"))


def _sse_response(stream_id: str, body: Iterator[bytes]) -> Response:
    return Response(body, mimetype="text/event-stream", headers={
        "X-Stream-Id": stream_id, "Cache-Control": "no-cache", "X-Accel-Buffering": "no",
    })


def _error(status: int, body: dict[str, Any]) -> Response:
    response = jsonify(body)
    response.status_code = status
    return response


# One handler for every error on these routes, ApiError or not: OpenAI's shape,
# Retry-After included (gateway/errors.py).
openai_api.register_error_handler(Exception, render_openai)
