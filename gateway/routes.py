"""The /v1 routes (docs/protocol.md) and the health check."""

from __future__ import annotations

import logging

import redis
from flask import Blueprint, Response, g, jsonify, request, url_for

from gateway.auth import access, may_access
from gateway.errors import ApiError
from gateway.intake import queue_stream
from gateway.openai_routes import openai_events_response
from gateway.services import services
from gateway.streaming import queue_position, stream_response
from gateway.validation import parse_chat_request
from spool import idempotency
from spool.errors import StreamNotFoundError
from spool.events import StreamStatus
from spool.keys import is_stream_id, new_stream_id
from spool.logs import bind
from spool.tail import wait_for_end
from spool.wire import NdjsonEncoder, SseEncoder, WireFormat

log = logging.getLogger(__name__)

api = Blueprint("api", __name__)

# How long POST .../cancel waits for the worker to confirm.
CANCEL_WAIT_SECONDS = 5.0


@api.get("/healthz")
def healthz():
    return jsonify(status="ok")


@api.post("/v1/streams")
def create_stream():
    s = services()
    chat = parse_chat_request(request, s.settings)
    fmt = _accepted_stream_format()
    idempotency_key = request.headers.get("Idempotency-Key")
    stream_id = new_stream_id()
    if idempotency_key is not None:
        existing = _bind_idempotency_key(idempotency_key, stream_id, chat)
        if existing is not None:
            return _created_response(existing, fmt, replayed=True)
    try:
        queue_stream(stream_id, chat, "spool")
    except Exception:
        if idempotency_key is not None:
            idempotency.release(s.redis, s.store.keys, _scoped(idempotency_key))
        raise
    log.info("stream %s queued (model %s)", stream_id, chat["model"])
    return _created_response(stream_id, fmt)


def _scoped(idempotency_key: str) -> str:
    """The key as stored: per API key, so one client cannot replay another's stream."""
    return f"{g.spool_owner or ''}\n{idempotency_key}"


def _bind_idempotency_key(key: str, stream_id: str, chat: dict) -> str | None:
    """None if `key` is new (now bound to `stream_id`), else the stream it names."""
    s = services()
    if not idempotency.is_valid_key(key):
        raise ApiError(400, "invalid_idempotency_key", "Idempotency-Key must be 1 to 255 printable ASCII characters")
    print_ = idempotency.fingerprint(chat)
    bound = idempotency.claim(s.redis, s.store.keys, _scoped(key), stream_id, print_, s.settings.stream_ttl)
    if bound is None:
        return None
    existing, existing_print = bound
    if existing_print != print_:
        raise ApiError(422, "idempotency_key_reused", "this Idempotency-Key was used with a different request")
    return existing


def _created_response(stream_id: str, fmt: WireFormat | None, *, replayed: bool = False) -> Response:
    """The answer to a POST: the live stream, or 202 with the stream's URLs;
    both with the stream's read token."""
    token = access().read_token(stream_id)
    if fmt is not None:
        response = _stream_response(stream_id, 0, fmt)
    else:
        status = services().store.meta(stream_id)["status"] if replayed else "queued"
        response = jsonify(
            read_token=token,
            id=stream_id,
            status=status,
            url=url_for("api.get_stream", stream_id=stream_id),
            events_url=url_for("api.stream_events", stream_id=stream_id),
            cancel_url=url_for("api.cancel_stream", stream_id=stream_id),
        )
        response.status_code = 202
        response.headers["X-Stream-Id"] = stream_id
    response.headers["X-Stream-Token"] = token
    if replayed:
        response.headers["Idempotent-Replayed"] = "true"
    return response


@api.get("/v1/streams/<stream_id>")
def get_stream(stream_id: str):
    s = services()
    try:
        snapshot = s.store.snapshot(_checked(stream_id))
    except StreamNotFoundError:
        raise _not_found(stream_id) from None
    snapshot["queue_position"] = queue_position(s, stream_id)() if snapshot["status"] == "queued" else None
    return jsonify(snapshot)


@api.get("/v1/streams/<stream_id>/events")
def stream_events(stream_id: str):
    s = services()
    stream_id = _checked(stream_id)
    bind(stream_id=stream_id)
    fmt = _requested_format()
    after = _resume_point()
    try:
        meta = s.store.meta(stream_id)
    except StreamNotFoundError:
        raise _not_found(stream_id) from None
    if after > int(meta["last_seq"]) and not StreamStatus(meta["status"]).is_terminal:
        # No one has seen an event not yet written; and a cursor past the end
        # would park this process's shared XREAD for the stream beyond it.
        raise ApiError(400, "invalid_cursor", "after / Last-Event-ID is beyond the stream's last event")
    # Nothing can follow the terminal event: answer at once instead of idling.
    ended = StreamStatus(meta["status"]).is_terminal and after >= int(meta["last_seq"])
    if fmt is WireFormat.OPENAI:
        return openai_events_response(stream_id, after, meta, ended=ended)
    return _stream_response(stream_id, after, fmt, ended=ended)


@api.post("/v1/streams/<stream_id>/cancel")
def cancel_stream(stream_id: str):
    s = services()
    stream_id = _checked(stream_id)
    bind(stream_id=stream_id)
    try:
        seen = int(s.store.meta(stream_id).get("last_seq", 0))
        status = s.store.cancel(stream_id)
    except StreamNotFoundError:
        raise _not_found(stream_id) from None
    except (redis.ConnectionError, redis.TimeoutError) as exc:
        # Redis is really unreachable: the error handler answers 503 (retry).
        log.warning("cancel of stream %s failed: Redis unreachable (%s: %s)", stream_id, type(exc).__name__, exc)
        raise
    except redis.RedisError as exc:
        # Redis answered, with an error (a script, a wrong type): not an
        # outage, so no 503 telling the client to retry the same thing.
        log.error("cancel of stream %s failed: Redis refused it (%s: %s)", stream_id, type(exc).__name__, exc,
                  exc_info=True)
        raise ApiError(500, "internal_error", "internal error") from None
    if status.is_terminal:
        return jsonify(id=stream_id, status=status.value)
    ended = wait_for_end(s.store, s.hub, stream_id, seen, CANCEL_WAIT_SECONDS)
    if ended is not None:
        return jsonify(id=stream_id, status=ended.decode())
    response = jsonify(id=stream_id, status=status.value, cancel_requested=True)
    response.status_code = 202
    return response


def _stream_response(stream_id: str, after: int, fmt: WireFormat, *, ended: bool = False) -> Response:
    encoder = NdjsonEncoder() if fmt is WireFormat.NDJSON else SseEncoder()
    return stream_response(stream_id, after, encoder, ended=ended)


def _accepted_stream_format() -> WireFormat | None:
    """The stream format the POST's Accept names explicitly (wildcards don't count)."""
    quality = {mime: q for mime, q in request.accept_mimetypes if q > 0}
    best = max(WireFormat, key=lambda f: quality.get(f.mimetype, 0))
    return best if quality.get(best.mimetype, 0) > 0 else None


def _requested_format() -> WireFormat:
    name = request.args.get("format")
    if name is not None:
        try:
            return WireFormat(name)
        except ValueError:
            raise ApiError(400, "invalid_format", "format must be ndjson, sse or openai") from None
    return _accepted_stream_format() or WireFormat.NDJSON


def _resume_point() -> int:
    raw = request.args.get("after")
    if raw is None:
        raw = request.headers.get("Last-Event-ID")
    if raw is None or raw == "":
        return 0
    if not raw.isdigit():
        raise ApiError(400, "invalid_cursor", "after / Last-Event-ID must be a non-negative integer")
    return int(raw)


def _checked(stream_id: str) -> str:
    # The format check comes before any Redis key is built from the id; another
    # key's stream answers 404 too, so ids cannot be probed.
    if not is_stream_id(stream_id) or not may_access(stream_id):
        raise _not_found(stream_id)
    return stream_id


def _not_found(stream_id: str) -> ApiError:
    return ApiError(404, "not_found", "no such stream (unknown or expired id)")
