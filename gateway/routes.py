"""The /v1 routes (docs/protocol.md) and the health check."""

from __future__ import annotations

import logging

import redis

from flask import Blueprint, Response, g, jsonify, request, url_for

from gateway.auth import Caller, access, current_caller, may_access
from gateway.cursor import FROM_START, ResumePoint, resume_point
from gateway.errors import ApiError, as_api_error
from gateway.intake import queue_stream
from gateway.openai_routes import openai_events_response
from gateway.services import Services, services
from gateway.snapshot import snapshot
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
    s, caller = services(), current_caller()
    chat = parse_chat_request(request, s.settings)
    fmt = _accepted_stream_format()
    key = request.headers.get("Idempotency-Key")
    if key is not None:
        stream_id, replayed = _idempotent_stream(s, caller, key, chat)
        return _created_response(stream_id, fmt, replayed=replayed)
    stream_id = new_stream_id()
    position = queue_stream(s, caller, stream_id, chat, "spool", request_id=g.get("request_id"))
    log.info("stream %s queued (model %s)", stream_id, chat["model"])
    return _created_response(stream_id, fmt, position=position)


# How often a request may find its key's record gone or stale and claim again
# (a claimer that gave up, a stream that expired before its key): twice is
# already a race within a race.
_CLAIM_ATTEMPTS = 3


def _idempotent_stream(s: Services, caller: Caller, key: str, chat: dict) -> tuple[str, bool]:
    """The stream `key` names: (a stream this request created, False), or
    (the stream the first request with `key` created, True). A refusal of the
    first request (429, 503) is raised again, the same, for every retry
    until its Retry-After has passed (spool/idempotency.py)."""
    if not idempotency.is_valid_key(key):
        raise ApiError(400, "invalid_idempotency_key", "Idempotency-Key must be 1 to 255 printable ASCII characters")
    records = idempotency.IdempotencyKeys(s.redis, s.store.keys)
    name = records.name(_scoped(caller, key))
    print_ = idempotency.fingerprint(chat)
    for _ in range(_CLAIM_ATTEMPTS):
        record, claimed = records.claim(name, new_stream_id(), print_)
        if claimed:
            return _create_claimed(s, caller, records, name, record, chat), False
        if record.fingerprint != print_:
            raise ApiError(422, "idempotency_key_reused", "this Idempotency-Key was used with a different request")
        if record.state is idempotency.State.PENDING:
            record = records.wait(name)
            if record is None:
                continue  # the claimer decided nothing: claim it ourselves
            if record.state is idempotency.State.PENDING:
                break
        if record.state is idempotency.State.REFUSED:
            raise ApiError(**record.refusal)
        if s.store.exists(record.stream_id):
            return record.stream_id, True
        records.forget(name, record)  # the stream expired before its key
    raise ApiError(409, "idempotency_key_in_use", "a request with this Idempotency-Key is still being processed",
                   retry_after=1)


def _create_claimed(s: Services, caller: Caller, records: idempotency.IdempotencyKeys, name: str,
                    pending: idempotency.Record, chat: dict) -> str:
    """Create the stream `pending` claimed, and decide the key: the stream,
    or the refusal every concurrent retry will get too."""
    stream_id = pending.stream_id
    try:
        queue_stream(s, caller, stream_id, chat, "spool", request_id=g.get("request_id"))
    except Exception as exc:
        error = as_api_error(exc)
        if error.status in (429, 503):
            refusal = {"status": error.status, "code": error.code, "message": error.message,
                       "retry_after": error.retry_after}
            outcome = idempotency.Record(idempotency.State.REFUSED, pending.fingerprint, refusal=refusal)
            _decide_quietly(records, name, pending, outcome, error.retry_after or 1)
            raise error from (None if error is exc else exc)
        _forget_quietly(records, name, pending)
        raise
    outcome = idempotency.Record(idempotency.State.STREAM, pending.fingerprint, stream_id)
    if not records.decide(name, pending, outcome, s.settings.stream_ttl):
        log.warning("stream %s created after its Idempotency-Key's claim expired", stream_id)
    log.info("stream %s queued (model %s)", stream_id, chat["model"])
    return stream_id


def _decide_quietly(records, name, pending, outcome, ttl) -> None:
    # The refusal may be Redis itself (full, unreachable): then the claim
    # expires on its own and waiters try again, meeting the same refusal.
    try:
        records.decide(name, pending, outcome, ttl)
    except redis.RedisError as exc:
        log.warning("could not record a refusal under its Idempotency-Key: %s", exc)
        _forget_quietly(records, name, pending)


def _forget_quietly(records, name, pending) -> None:
    try:
        records.forget(name, pending)
    except redis.RedisError as exc:
        log.warning("could not release an Idempotency-Key: %s", exc)


def _scoped(caller: Caller, idempotency_key: str) -> str:
    """The key as stored: per API key, so one client cannot replay another's stream."""
    return f"{caller.owner}\n{idempotency_key}"


def _created_response(stream_id: str, fmt: WireFormat | None, *, replayed: bool = False,
                      position: int | None = None) -> Response:
    """The answer to a POST: the live stream, or 202 with the stream's URLs;
    both with the stream's read token. `position`: its place in the queue,
    when queueing it told."""
    token = access().read_token(stream_id)
    if fmt is not None:
        response = _stream_response(stream_id, FROM_START, fmt, position)
    else:
        status = services().store.meta(stream_id).status.value if replayed else StreamStatus.QUEUED.value
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
    s, caller = services(), current_caller()
    try:
        state = snapshot(s.store, _checked(caller, stream_id))
    except StreamNotFoundError:
        raise _not_found(stream_id) from None
    state["queue_position"] = queue_position(s, stream_id)() if state["status"] == StreamStatus.QUEUED.value else None
    return jsonify(state)


@api.get("/v1/streams/<stream_id>/events")
def stream_events(stream_id: str):
    s, caller = services(), current_caller()
    stream_id = _checked(caller, stream_id)
    bind(stream_id=stream_id)
    fmt = _requested_format()
    after = _resume_point()
    try:
        meta = s.store.meta(stream_id)
    except StreamNotFoundError:
        raise _not_found(stream_id) from None
    point = resume_point(after, meta)  # a cursor past the end after a failover is followed (gateway/cursor.py)
    if fmt is WireFormat.OPENAI:
        return openai_events_response(stream_id, point, meta)
    return _stream_response(stream_id, point, fmt)


@api.post("/v1/streams/<stream_id>/cancel")
def cancel_stream(stream_id: str):
    s, caller = services(), current_caller()
    stream_id = _checked(caller, stream_id)
    bind(stream_id=stream_id)
    try:
        seen = s.store.meta(stream_id).last_seq
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


def _stream_response(stream_id: str, point: ResumePoint, fmt: WireFormat, position: int | None = None) -> Response:
    encoder = NdjsonEncoder() if fmt is WireFormat.NDJSON else SseEncoder()
    return stream_response(stream_id, point.start, point.encoder(encoder), ended=point.ended, position=position)


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


# A seq is a Redis Stream entry's sequence number: 19 digits hold any int64.
_MAX_CURSOR_DIGITS = 19


def _resume_point() -> int:
    """The cursor of `?after=` or `Last-Event-ID`: ASCII digits only (`str.isdigit`
    also accepts `²`, which `int` refuses, and `٣`, which it reads as 3)."""
    raw = request.args.get("after")
    if raw is None:
        raw = request.headers.get("Last-Event-ID")
    if raw is None or raw == "":
        return 0
    if not (raw.isascii() and raw.isdigit() and len(raw) <= _MAX_CURSOR_DIGITS):
        raise ApiError(400, "invalid_cursor", "after / Last-Event-ID must be a non-negative integer",
                       param="after")
    return int(raw)


def _checked(caller: Caller, stream_id: str) -> str:
    # The format check comes before any Redis key is built from the id; another
    # key's stream answers 404 too, so ids cannot be probed.
    if not is_stream_id(stream_id) or not may_access(caller, stream_id):
        raise _not_found(stream_id)
    return stream_id


def _not_found(stream_id: str) -> ApiError:
    return ApiError(404, "not_found", "no such stream (unknown or expired id)")
