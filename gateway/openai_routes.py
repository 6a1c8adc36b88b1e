"""The OpenAI-compatible routes: POST /v1/chat/completions and GET /v1/models.

A completion is an ordinary spool stream (same store, queue and tail), so it
can be resumed with GET /v1/streams/<id>/events?format=openai&after=<seq>.
Errors on these routes use OpenAI's shape
`{"error": {"message", "type", "param", "code"}}`.
"""

from __future__ import annotations

import logging
import time
from typing import Any

from flask import Blueprint, Response, g, jsonify, request

from gateway.auth import current_caller
from gateway.cursor import ResumePoint
from gateway.errors import render_openai
from gateway.intake import queue_stream
from gateway.openai_request import parse_completion_request
from gateway.services import Services, services
from gateway.streaming import stream_response
from gateway.validation import read_json_body
from spool.keys import new_stream_id
from spool.message import MessageFold
from spool.openai_wire import ChunkContext, OpenAIEncoder, completion, completion_id, error_body, error_status
from spool.streams import StreamMeta
from spool.tail import events

log = logging.getLogger(__name__)

openai_api = Blueprint("openai", __name__)

@openai_api.get("/v1/models")
def list_models():
    s = services()
    return jsonify(object="list", data=[
        {"id": model, "object": "model", "created": 0, "owned_by": "spool"} for model in s.settings.model_ids
    ])


@openai_api.post("/v1/chat/completions")
def chat_completions():
    s, caller = services(), current_caller()
    body = read_json_body(request, s.settings)
    parsed = parse_completion_request(body.value, s.settings, body.depths)
    stream_id = new_stream_id()
    queue_stream(s, caller, stream_id, parsed.chat, "openai", request_id=g.get("request_id"))
    log.info("completion queued", extra={"model": parsed.chat["model"], "stream": parsed.stream})
    ctx = ChunkContext(completion_id(stream_id), parsed.chat["model"], int(time.time()), parsed.include_usage)
    if parsed.stream:
        return stream_response(stream_id, 0, OpenAIEncoder(ctx))
    return _wait_for_completion(s, stream_id, ctx)


def openai_events_response(stream_id: str, point: ResumePoint, meta: StreamMeta) -> Response:
    """The events route in the `openai` format (called by gateway/routes.py)."""
    include_usage = request.args.get("include_usage", "").lower() in ("1", "true")
    ctx = ChunkContext(completion_id(stream_id), meta.model or "", int(meta.created_at or 0), include_usage)
    return stream_response(stream_id, point.start, point.encoder(OpenAIEncoder(ctx)), ended=point.ended)


def _wait_for_completion(s: Services, stream_id: str, ctx: ChunkContext) -> Response:
    folded = MessageFold()
    for event in events(s.store, s.hub, stream_id, 0, s.settings.heartbeat_interval):
        if event is None:
            continue
        folded.add_stored(event)
        if folded.ended == "done":
            response = jsonify(completion(ctx, folded))
            response.headers["X-Stream-Id"] = stream_id
            return response
        if folded.ended == "error":
            error = folded.error or {}
            return _error(error_status(error), error_body(error["code"], error["message"], param=error.get("param")))
        if folded.ended == "cancelled":
            return _error(409, error_body("cancelled", "the generation was cancelled"))
    return _error(503, error_body("stream_interrupted", "the stream store was lost; retry", "server_error"))


def _error(status: int, body: dict[str, Any]) -> Response:
    response = jsonify(body)
    response.status_code = status
    return response


# One handler for every error on these routes, ApiError or not: OpenAI's shape,
# Retry-After included (gateway/errors.py).
openai_api.register_error_handler(Exception, render_openai)
