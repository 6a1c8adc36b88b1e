"""The AI SDK routes: a drop-in backend for `useChat` + `DefaultChatTransport`.

- `POST /v1/ui/chat`: the transport's body `{id, messages, trigger, messageId,
  ...extra}` queues an answer as an ordinary spool stream, remembers it as
  the chat's latest, and streams it as a UI message stream (spool/ui_wire.py).
- `GET /v1/ui/chat/<chat id>/stream`: the chat's latest answer from its
  start, replayed then live (204 when there is none); `Last-Event-ID` or
  `?after=` gives only the rest.
- `POST /v1/ui/chat/<chat id>/stop`: cancels the answer; every reader ends
  with an `abort` chunk. A dropped connection never stops an answer.

Every response is the one follow loop (gateway/streaming.py) with the UI
message stream's encoder (spool/ui_wire.py `UiMessageEncoder`).

A chat id is remembered per API key (Keys.ui_chat), so it names a chat of the
key that created it; the stream behind it is checked with `may_access` too.
"""

from __future__ import annotations

import logging
import re
from typing import Any

from flask import Blueprint, Response, g, jsonify, request

from gateway.auth import Caller, current_caller, may_access
from gateway.cursor import resume_point
from gateway.errors import ApiError
from gateway.intake import queue_stream
from gateway.openai_request import parse_completion_request
from gateway.routes import CANCEL_WAIT_SECONDS
from gateway.services import Services, services
from gateway.streaming import stream_response
from gateway.ui_messages import to_chat_messages
from gateway.validation import read_json_body
from spool.errors import StreamNotFoundError
from spool.keys import is_stream_id, new_stream_id
from spool.logs import bind
from spool.tail import wait_for_end
from spool.ui_wire import UI_STREAM_HEADER, UiMessageEncoder
from spool.wire import Encoder

log = logging.getLogger(__name__)

ui_api = Blueprint("ui", __name__)

# The AI SDK's own ids are 16 alphanumerics; UUIDs and the like fit too.
_CHAT_ID = re.compile(r"[A-Za-z0-9_-]{1,128}")
# The transport's own fields; the rest are the chat completions route's.
TRANSPORT_FIELDS = frozenset({"id", "messages", "trigger", "messageId"})


@ui_api.post("/v1/ui/chat")
def send_messages():
    s, caller = services(), current_caller()
    read = read_json_body(request, s.settings)
    body = read.value
    if not isinstance(body, dict):
        raise ApiError(400, "invalid_request", "body must be a JSON object")
    chat_id = _chat_id(body.get("id"))
    extra = {k: v for k, v in body.items() if k not in TRANSPORT_FIELDS}
    messages = to_chat_messages(body.get("messages"), extra.get("tools"))
    # The depths of the extras as read; the converted messages are measured anew.
    parsed = parse_completion_request({**extra, "messages": messages}, s.settings,
                                      {name: read.depths[name] for name in extra})
    stream_id = new_stream_id()
    queue_stream(s, caller, stream_id, parsed.chat, "ui", request_id=g.get("request_id"))
    # The stream is kept stream_ttl after its last write: remember it as long.
    ttl = s.settings.stream_ttl + int(s.settings.max_generation_seconds)
    s.redis.set(_chat_key(s, caller, chat_id), stream_id, ex=ttl)
    log.info("ui chat answer %s queued (model %s)", stream_id, parsed.chat["model"])
    return _ui_response(stream_id, 0, UiMessageEncoder(stream_id))


@ui_api.get("/v1/ui/chat/<chat_id>/stream")
def resume_stream(chat_id: str):
    s, caller = services(), current_caller()
    stream_id = _chat_stream(s, caller, _chat_id(chat_id))
    after = _resume_point()
    try:
        meta = s.store.meta(stream_id) if stream_id else None
    except StreamNotFoundError:
        meta = None
    if meta is None:
        return Response(status=204)
    point = resume_point(after, meta)  # as on the events route (gateway/cursor.py)
    # A full replay starts at the attempt that is running now (spool/ui_wire.py).
    skip_to = meta.attempt if after == 0 else 1
    # Ended: nothing can follow, the response is just [DONE].
    encoder = UiMessageEncoder(stream_id, skip_to_attempt=skip_to, ended=point.ended)
    return _ui_response(stream_id, point.start, point.encoder(encoder), ended=point.ended)


@ui_api.post("/v1/ui/chat/<chat_id>/stop")
def stop_stream(chat_id: str):
    s, caller = services(), current_caller()
    stream_id = _chat_stream(s, caller, _chat_id(chat_id))
    try:
        if stream_id is None:
            raise StreamNotFoundError(chat_id)
        seen = s.store.meta(stream_id).last_seq
        status = s.store.cancel(stream_id)
    except StreamNotFoundError:
        raise ApiError(404, "not_found", "this chat has no answer to stop (unknown or expired)") from None
    if not status.is_terminal:
        ended = wait_for_end(s.store, s.hub, stream_id, seen, CANCEL_WAIT_SECONDS)
        if ended is None:
            response = jsonify(id=stream_id, status=status.value, cancel_requested=True)
            response.status_code = 202
            return response
        return jsonify(id=stream_id, status=ended.decode())
    return jsonify(id=stream_id, status=status.value)


def _chat_id(value: Any) -> str:
    # Checked before any key is built from it.
    if not isinstance(value, str) or not _CHAT_ID.fullmatch(value):
        raise ApiError(400, "invalid_chat_id", "the chat id must be 1 to 128 characters of A-Z a-z 0-9 _ -")
    return value


def _chat_key(s: Services, caller: Caller, chat_id: str) -> str:
    return s.store.keys.ui_chat(caller.owner, chat_id)


def _chat_stream(s: Services, caller: Caller, chat_id: str) -> str | None:
    """The chat's latest stream, if `caller` may use it."""
    raw = s.redis.get(_chat_key(s, caller, chat_id))
    stream_id = raw.decode() if raw else None
    if stream_id is None or not is_stream_id(stream_id) or not may_access(caller, stream_id):
        return None
    bind(stream_id=stream_id)
    return stream_id


def _resume_point() -> int:
    raw = request.args.get("after")
    if raw is None:
        raw = request.headers.get("Last-Event-ID")
    if raw is None or raw == "":
        return 0
    if not raw.isdigit() or len(raw) > 18:
        raise ApiError(400, "invalid_cursor", "after / Last-Event-ID must be a non-negative integer")
    return int(raw)


def _ui_response(stream_id: str, after: int, encoder: Encoder, *, ended: bool = False) -> Response:
    response = stream_response(stream_id, after, encoder, ended=ended)
    response.headers[UI_STREAM_HEADER[0]] = UI_STREAM_HEADER[1]
    return response
