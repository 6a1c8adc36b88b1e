"""Per-client limits and queue backpressure, kept in Redis so every gateway
process shares them.

The client ("subject") is the API key's owner hash, or, when the gateway runs
without keys, the client IP as the gateway sees it (behind a proxy that is the
proxy's address, so the limit becomes global; see docs/security.md).

- Rate: a fixed one-minute window counter per subject (INCR + EXPIRE in one
  script), over every /v1 request. Over the limit: 429 with Retry-After.
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

import redis
from flask import Flask, g, request

from gateway.auth import API_PREFIX
from gateway.errors import ApiError
from gateway.services import services
from spool.events import StreamStatus

# KEYS: counter. ARGV: window seconds. Returns {count, seconds left}.
_RATE = """
local n = redis.call('INCR', KEYS[1])
if n == 1 then redis.call('EXPIRE', KEYS[1], ARGV[1]) end
return {n, redis.call('TTL', KEYS[1])}
"""

# KEYS: live set. ARGV: limit, now, stream id, ttl. Returns 1 when admitted.
_ADMIT = """
if redis.call('ZCARD', KEYS[1]) >= tonumber(ARGV[1]) then return 0 end
redis.call('ZADD', KEYS[1], ARGV[2], ARGV[3])
redis.call('EXPIRE', KEYS[1], ARGV[4])
return 1
"""

WINDOW_SECONDS = 60
# How soon to retry when refused for concurrency or queue depth: streams end
# and the queue drains on the scale of seconds.
BUSY_RETRY_AFTER = 5

_TERMINAL = frozenset(s.value.encode() for s in StreamStatus if s.is_terminal)


def register_limits(app: Flask) -> None:
    """Count every /v1 request against its client's per-minute limit."""

    @app.before_request
    def _rate_limit():
        limit = services().settings.rate_limit_per_minute
        if limit and request.path.startswith(API_PREFIX) and request.method != "OPTIONS":
            check_rate(services().redis, services().store.keys.rate_window, g.spool_subject, limit)


def check_rate(client: redis.Redis, key_for, subject: str, limit: int, now: float | None = None) -> None:
    """Count one request of `subject`; raise ApiError 429 past `limit` a minute."""
    window = int((time.time() if now is None else now) // WINDOW_SECONDS)
    count, ttl = client.register_script(_RATE)(keys=[key_for(subject, window)], args=[WINDOW_SECONDS])
    if count > limit:
        raise ApiError(429, "rate_limited", f"more than {limit} requests a minute", retry_after=int(ttl))


def admit_stream(stream_id: str) -> None:
    """Refuse a new stream when the queue is full or its client has too many
    live streams; otherwise count it as live. With a concurrency limit, call
    it once the stream's metadata exists."""
    s = services()
    depth = s.settings.max_queue_depth
    if depth and s.queue.count >= depth:
        raise ApiError(503, "queue_full", "too many answers are waiting; retry shortly", retry_after=BUSY_RETRY_AFTER)
    limit = s.settings.max_concurrent_streams
    if limit:
        key = s.store.keys.live_streams(g.spool_subject)
        prune_ended(s.redis, key, s.store.keys.meta)
        admitted = s.redis.register_script(_ADMIT)(
            keys=[key], args=[limit, time.time(), stream_id, s.settings.stream_ttl]
        )
        if not admitted:
            raise ApiError(429, "too_many_streams", f"at most {limit} live streams at a time",
                           retry_after=BUSY_RETRY_AFTER)


def prune_ended(client: redis.Redis, key: str, meta_key_for) -> int:
    """Drop the members of the live set `key` whose stream ended or expired;
    returns how many. The set holds at most the limit, so this is bounded."""
    members = client.zrange(key, 0, -1)
    if not members:
        return 0
    with client.pipeline(transaction=False) as pipe:
        for member in members:
            pipe.hget(meta_key_for(member.decode()), "status")
        statuses = pipe.execute()
    ended = [m for m, status in zip(members, statuses) if status is None or status in _TERMINAL]
    if ended:
        client.zrem(key, *ended)
    return len(ended)
