"""How Redis is doing: reachable, refusing writes, or near its memory cap.

A Redis at `maxmemory` with a no-eviction policy refuses every write with
OOM; a replica promoted away from under a client answers READONLY. Both are
passing states to wait out, like a dropped connection, not bugs to crash on.
"""

from __future__ import annotations

from dataclasses import dataclass

import redis

# Replies that mean "not now" rather than "never": back off and retry.
_REFUSALS = ("OOM ", "READONLY ", "LOADING ", "MASTERDOWN ", "BUSY ", "TRYAGAIN ")
# Policies under which a Redis at its cap refuses writes (the others evict).
_REFUSING_POLICIES = ("noeviction", "volatile-lru", "volatile-lfu", "volatile-random", "volatile-ttl")


def is_transient(exc: BaseException) -> bool:
    """Whether `exc` is Redis being away or refusing writes for now."""
    if isinstance(exc, (redis.ConnectionError, redis.TimeoutError, redis.exceptions.ReadOnlyError,
                        redis.exceptions.BusyLoadingError)):
        return True
    if isinstance(exc, redis.ResponseError):
        # An error inside a script arrives as "... script: ...: OOM command not allowed ..."
        text = str(exc)
        return any(text.startswith(r) or f": {r}" in text for r in _REFUSALS) or "OOM command not allowed" in text
    return False


@dataclass(frozen=True)
class RedisMemory:
    """Redis' memory use and cap (bytes; cap 0 means none) and its policy."""

    used: int
    maxmemory: int
    policy: str

    @property
    def full(self) -> bool:
        """At its cap under a policy that refuses writes there."""
        return 0 < self.maxmemory <= self.used and self.policy in _REFUSING_POLICIES


def memory(client: redis.Redis) -> RedisMemory | None:
    """Redis' memory figures (INFO memory), or None where the server does not
    report them (the embedded development server may not)."""
    try:
        info = client.info("memory")
    except redis.ResponseError:  # an unknown command there; connection errors are raised
        return None
    try:
        return RedisMemory(int(info["used_memory"]), int(info.get("maxmemory", 0)),
                           str(info.get("maxmemory_policy", "noeviction")))
    except (KeyError, TypeError, ValueError):
        return None


def write_refusal(client: redis.Redis, probe_key: str) -> str | None:
    """Why Redis refuses writes now: "full" (OOM), "readonly" (a replica), or
    None when it accepts them. The probe is `SET <probe_key> 1 XX` on a key
    that never exists: refused like any write, it never writes anything."""
    try:
        client.set(probe_key, 1, xx=True)
    except redis.exceptions.OutOfMemoryError:
        return "full"
    except redis.exceptions.ReadOnlyError:
        return "readonly"
    except redis.ResponseError as exc:
        text = str(exc)
        if text.startswith("OOM"):
            return "full"
        if text.startswith("READONLY"):
            return "readonly"
        raise
    return None


class RedisMemoryCollector:
    """Prometheus gauges of Redis' memory, read at scrape time: used bytes,
    the cap, and the share of it used (absent without a cap)."""

    def __init__(self, client: redis.Redis) -> None:
        self._client = client

    def collect(self):
        from prometheus_client.core import GaugeMetricFamily

        try:
            figures = memory(self._client)
        except redis.RedisError:
            return []
        if figures is None:
            return []
        found = [
            GaugeMetricFamily("spool_redis_used_memory_bytes", "Memory Redis uses (INFO used_memory)",
                              value=figures.used),
            GaugeMetricFamily("spool_redis_maxmemory_bytes", "Redis' memory cap (0: none)", value=figures.maxmemory),
        ]
        if figures.maxmemory:
            found.append(GaugeMetricFamily("spool_redis_memory_used_ratio",
                                           "Share of Redis' memory cap in use (writes fail at 1 without eviction)",
                                           value=figures.used / figures.maxmemory))
        return found
