"""The /v1 routes (docs/protocol.md) and the health check."""

from __future__ import annotations

import logging
from collections.abc import Iterator

from flask import Blueprint, Response, g, jsonify, request, url_for

from gateway.auth import access, may_access
from gateway.errors import ApiError
from gateway.limits import admit_stream
from gateway.services import services
from gateway.validation import parse_chat_request
from spool.errors import StreamNotFoundError
from spool.events import StreamStatus
from spool.keys import is_stream_id, new_stream_id
from spool.queueing import enqueue_generation
from spool.tail import follow, wait_for_end
from spool.wire import WireFormat

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
    stream_id = new_stream_id()
    token = access().read_token(stream_id)
    admit_stream(stream_id)
    s.store.create(stream_id, chat, owner=g.spool_owner)
    try:
        enqueue_generation(s.queue, stream_id, s.settings.stream_ttl)
    except Exception:
        s.store.delete(stream_id)
        raise
    log.info("stream %s queued (model %s)", stream_id, chat["model"])
    if fmt is not None:
        response = _stream_response(stream_id, 0, fmt)
        response.headers["X-Stream-Token"] = token
        return response
    response = jsonify(
        read_token=token,
        id=stream_id,
        status="queued",
        url=url_for("api.get_stream", stream_id=stream_id),
        events_url=url_for("api.stream_events", stream_id=stream_id),
        cancel_url=url_for("api.cancel_stream", stream_id=stream_id),
    )
    response.status_code = 202
    response.headers["X-Stream-Id"] = stream_id
    response.headers["X-Stream-Token"] = token
    return response


@api.get("/v1/streams/<stream_id>")
def get_stream(stream_id: str):
    s = services()
    try:
        return jsonify(s.store.snapshot(_checked(stream_id)))
    except StreamNotFoundError:
        raise _not_found(stream_id) from None


@api.get("/v1/streams/<stream_id>/events")
def stream_events(stream_id: str):
    s = services()
    stream_id = _checked(stream_id)
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
    if StreamStatus(meta["status"]).is_terminal and after >= int(meta["last_seq"]):
        # Nothing can follow the terminal event: answer at once instead of idling.
        return _stream_response(stream_id, after, fmt, body=iter([fmt.preamble]))
    return _stream_response(stream_id, after, fmt)


@api.post("/v1/streams/<stream_id>/cancel")
def cancel_stream(stream_id: str):
    s = services()
    stream_id = _checked(stream_id)
    try:
        seen = int(s.store.meta(stream_id).get("last_seq", 0))
        status = s.store.cancel(stream_id)
    except StreamNotFoundError:
        raise _not_found(stream_id) from None
    if status.is_terminal:
        return jsonify(id=stream_id, status=status.value)
    ended = wait_for_end(s.store, s.hub, stream_id, seen, CANCEL_WAIT_SECONDS)
    if ended is not None:
        return jsonify(id=stream_id, status=ended.decode())
    response = jsonify(id=stream_id, status=status.value, cancel_requested=True)
    response.status_code = 202
    return response


def _stream_response(stream_id: str, after: int, fmt: WireFormat, body: Iterator[bytes] | None = None) -> Response:
    s = services()
    if body is None:
        body = follow(s.store, s.hub, stream_id, after, fmt, s.settings.heartbeat_interval)
    return Response(
        body,
        mimetype=fmt.mimetype,
        headers={"X-Stream-Id": stream_id, "Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
    )


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
            raise ApiError(400, "invalid_format", "format must be ndjson or sse") from None
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
