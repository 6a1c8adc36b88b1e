"""The worker's Prometheus metrics, served by `spool worker --metrics-port`.

Per-token work is one attribute increment (GenerationWatch.token); every
other sample is taken once per generation.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import redis
from prometheus_client import REGISTRY, Counter, Gauge, Histogram, disable_created_metrics, start_http_server

from spool.redis_health import RedisMemoryCollector

# The `_created` series double every counter and histogram for no dashboard use.
disable_created_metrics()

# Seconds: answers take from a fraction of a second to many minutes.
_LATENCY_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60)
_DURATION_BUCKETS = (0.5, 1, 2, 5, 10, 30, 60, 120, 300, 900)

STREAMS_FINISHED = Counter("spool_streams_finished_total", "Generations ended, by outcome", ["outcome"])
QUEUE_WAIT = Histogram("spool_queue_wait_seconds", "From stream creation to a worker taking it",
                       buckets=_LATENCY_BUCKETS)
TIME_TO_FIRST_TOKEN = Histogram("spool_time_to_first_token_seconds",
                                "From stream creation (queue wait included) to the first answer text",
                                buckets=_LATENCY_BUCKETS)
STREAM_DURATION = Histogram("spool_stream_duration_seconds", "From stream creation to its terminal event",
                            ["outcome"], buckets=_DURATION_BUCKETS)
TOKENS = Counter("spool_tokens_total", "Upstream chunks with answer text published to streams")
UPSTREAM_ERRORS = Counter("spool_upstream_errors_total", "Upstream failures, by error-event code", ["code"])
REDIS_ERRORS = Counter("spool_worker_redis_errors_total", "Failed Redis writes (each retried)")
SLOTS = Gauge("spool_worker_slots", "Generations this worker may run at once")
SLOTS_IN_USE = Gauge("spool_worker_slots_in_use", "Generations running now")


class GenerationWatch:
    """Times one generation from its stream's creation (unix seconds)."""

    __slots__ = ("created_at", "tokens")

    def __init__(self, created_at: float) -> None:
        self.created_at = created_at
        self.tokens = 0
        QUEUE_WAIT.observe(max(time.time() - created_at, 0.0))

    def token(self) -> None:
        """Count one published piece of text; the first one is the TTFT."""
        if not self.tokens:
            TIME_TO_FIRST_TOKEN.observe(max(time.time() - self.created_at, 0.0))
        self.tokens += 1

    def end(self, outcome: str) -> None:
        """Record the generation's outcome, duration and token count."""
        STREAMS_FINISHED.labels(outcome).inc()
        STREAM_DURATION.labels(outcome).observe(max(time.time() - self.created_at, 0.0))
        TOKENS.inc(self.tokens)


def serve(port: int, slots: int, in_use: Callable[[], int], client: redis.Redis | None = None) -> None:
    """Serve /metrics on `port` (all interfaces) from a background thread;
    with `client`, Redis' memory use and cap too."""
    SLOTS.set(slots)
    SLOTS_IN_USE.set_function(in_use)
    if client is not None:
        REGISTRY.register(RedisMemoryCollector(client))
    start_http_server(port)
