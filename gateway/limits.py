"""Per-client limits and queue backpressure, kept in Redis so every gateway
process shares them.

The client ("subject") is the API key's owner hash, or, when the gateway runs
without keys, the client IP as the gateway sees it (behind a proxy that is the
proxy's address, so the limit becomes global; see docs/security.md).

- Rate: a fixed one-minute window counter per subject (INCR + EXPIRE in one
  script, spool/streams/lua/rate.lua), over every /v1 request. Over the limit: 429 with Retry-After.
- Concurrency: a sorted set per subject of its streams that may be live.
  Before a new stream is admitted, members that ended or expired are pruned;
  then one script checks the count and adds the new id atomically, so two
  racing requests cannot both take the last slot. Ended streams never leak a
  slot: they are pruned on the next admission.
- Queue depth: a new stream is refused with 503 while the RQ queue already
  holds `max_queue_depth` jobs.
"""

from __future__ import annotations

import time

from flask import Flask, request

from gateway.auth import API_PREFIX, current_caller
from gateway.errors import ApiError
from gateway.services import Services, services
from spool.streams import StreamStore

WINDOW_SECONDS = 60
# How soon to retry when refused for concurrency or queue depth: streams end
# and the queue drains on the scale of seconds.
BUSY_RETRY_AFTER = 5


def register_limits(app: Flask) -> None:
    """Count every /v1 request against its client's per-minute limit."""

    @app.before_request
    def _rate_limit():
        s = services()
        limit = s.settings.rate_limit_per_minute
        if limit and request.path.startswith(API_PREFIX) and request.method != "OPTIONS":
            # The caller, as gateway/auth.py's hook identified it.
            check_rate(s.store, current_caller().subject, limit)


def check_rate(store: StreamStore, subject: str, limit: int, now: float | None = None) -> None:
    """Count one request of `subject`; raise ApiError 429 past `limit` a minute
    (the counter and its script are the store's: spool/streams/lua/rate.lua)."""
    window = int((time.time() if now is None else now) // WINDOW_SECONDS)
    count, ttl = store.scripts.rate(keys=[store.keys.rate_window(subject, window)], args=[WINDOW_SECONDS])
    if count > limit:
        raise ApiError(429, "rate_limited", f"more than {limit} requests a minute", retry_after=int(ttl))


def admit_stream(s: Services, subject: str, stream_id: str) -> None:
    """Refuse a new stream of `subject` when the queue is full or `subject`
    has too many live streams; otherwise count it as live. With a
    concurrency limit, call it once the stream's metadata exists."""
    depth = s.settings.max_queue_depth
    if depth and s.queue.count >= depth:
        raise ApiError(503, "queue_full", "too many answers are waiting; retry shortly", retry_after=BUSY_RETRY_AFTER)
    limit = s.settings.max_concurrent_streams
    if limit:
        key = s.store.keys.live_streams(subject)
        prune_ended(s.store, key)
        admitted = s.store.scripts.admit(keys=[key], args=[limit, time.time(), stream_id, s.settings.stream_ttl])
        if not admitted:
            raise ApiError(429, "too_many_streams", f"at most {limit} live streams at a time",
                           retry_after=BUSY_RETRY_AFTER)


def prune_ended(store: StreamStore, key: str) -> int:
    """Drop the members of the live set `key` whose stream ended or expired;
    returns how many. The set holds at most the limit, so this is bounded."""
    members = store.redis.zrange(key, 0, -1)
    if not members:
        return 0
    statuses = store.statuses([member.decode() for member in members])
    ended = [m for m, status in zip(members, statuses) if status is None or status.is_terminal]
    if ended:
        store.redis.zrem(key, *ended)
    return len(ended)
