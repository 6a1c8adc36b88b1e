"""Operations: /readyz, /metrics, and request ids on every request."""

from __future__ import annotations

import logging
import time
import uuid

import redis
from flask import Blueprint, Flask, Response, g, jsonify, request
from rq import Worker

from gateway import metrics
from gateway.services import services
from spool.logs import bind, clear
from spool.redis_health import memory, write_refusal

log = logging.getLogger(__name__)

ops = Blueprint("ops", __name__)

# A worker heartbeats every 10 s (worker/rq_books.py); three missed beats
# and it no longer counts.
HEARTBEAT_MAX_AGE = 30.0


@ops.get("/readyz")
def readyz():
    """Ready when Redis answers and has room to write, and a worker on the
    queue heartbeated lately. The reasons name no address and quote no
    Redis error: the cause is logged here instead."""
    s = services()
    try:
        s.redis.ping()
        refusal = write_refusal(s.redis, f"{s.store.keys.prefix}:readyz-probe")
        figures = memory(s.redis)
        workers = Worker.all(queue=s.queue)
    except redis.RedisError as exc:
        metrics.REDIS_ERRORS.inc()
        log.warning("readiness: Redis unreachable (%s)", exc)
        return _not_ready("redis_unreachable", "redis unavailable")
    if refusal == "full" or (figures is not None and figures.full):
        if figures is not None:
            log.warning("readiness: Redis full (%d of %d bytes used, policy %s)", figures.used, figures.maxmemory,
                        figures.policy)
        return _not_ready("redis_full", "redis full: it refuses writes until memory is freed")
    if refusal == "readonly":
        log.warning("readiness: Redis is a read-only replica (after a failover?)")
        return _not_ready("redis_readonly", "redis read-only: it refuses writes")
    now = time.time()
    fresh = [w.name for w in workers if w.last_heartbeat and now - w.last_heartbeat.timestamp() <= HEARTBEAT_MAX_AGE]
    if not fresh:
        return _not_ready("no_workers", f"no worker on queue {s.queue.name!r} heartbeated in {HEARTBEAT_MAX_AGE:.0f}s")
    return jsonify(status="ready", workers=len(fresh))


@ops.get("/metrics")
def prometheus_metrics():
    body, content_type = metrics.exposition(services().queue)
    return Response(body, content_type=content_type)


def _not_ready(code: str, message: str):
    response = jsonify(status="unavailable", error={"code": code, "message": message})
    response.status_code = 503
    return response


def register_request_ids(app: Flask) -> None:
    """Take X-Request-ID from the client (or make one), log it, and send it back."""

    @app.before_request
    def _bind_request_id():
        clear()
        incoming = request.headers.get("X-Request-ID", "")
        g.request_id = incoming if 0 < len(incoming) <= 128 and incoming.isprintable() else uuid.uuid4().hex
        bind(request_id=g.request_id)

    @app.after_request
    def _send_request_id(response: Response) -> Response:
        response.headers["X-Request-ID"] = g.get("request_id", "")
        stream_id = response.headers.get("X-Stream-Id")
        if stream_id:
            bind(stream_id=stream_id)
        log.info("%s %s %d", request.method, request.path, response.status_code)
        return response
