"""The gateway's Prometheus metrics, and the /metrics exposition.

Under gunicorn every worker process writes its samples to files in
PROMETHEUS_MULTIPROC_DIR (`spool gateway` sets one up), and /metrics merges
them; without it (tests, `spool dev`) the process registry is served.
"""

from __future__ import annotations

import os
from collections.abc import Iterator

import redis
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    Counter,
    Gauge,
    generate_latest,
    disable_created_metrics,
    multiprocess,
)
from prometheus_client.core import GaugeMetricFamily
from rq import Queue
from rq.registry import StartedJobRegistry

from spool.redis_health import RedisMemoryCollector

# The `_created` series double every counter for no dashboard use.
disable_created_metrics()

STREAMS_CREATED = Counter("spool_streams_created_total", "Streams created, by API", ["api"])
STREAM_RESPONSES = Counter("spool_gateway_stream_responses_total", "Stream responses started, by wire format", ["format"])
RESUMES = Counter("spool_gateway_resumes_total", "Stream responses that resumed after a seq (after > 0)")
ACTIVE_STREAMS = Gauge("spool_gateway_active_streams", "Stream responses open now", multiprocess_mode="livesum")
SLOW_CLIENTS_CUT = Counter(
    "spool_gateway_slow_clients_cut_total",
    "Connections cut by the gateway's worker: io_timeout (a reader that stopped reading, or a stalled body), "
    "per_ip_cap (SPOOL_GATEWAY_MAX_CONNECTIONS_PER_IP)",
    ["reason"],
)
REDIS_ERRORS = Counter("spool_gateway_redis_errors_total", "Requests that failed because Redis was unreachable")


def tracked(body: Iterator[bytes], fmt: str, after: int) -> Iterator[bytes]:
    """`body`, counted as a stream response: open now, by format, resumed or not."""
    STREAM_RESPONSES.labels(fmt).inc()
    if after > 0:
        RESUMES.inc()
    ACTIVE_STREAMS.inc()
    try:
        yield from body
    finally:
        ACTIVE_STREAMS.dec()


class QueueCollector:
    """Queue depth and running jobs, read from Redis at scrape time."""

    def __init__(self, queue: Queue) -> None:
        self._queue = queue

    def collect(self):
        depth = GaugeMetricFamily("spool_queue_depth", "Jobs waiting in the queue", labels=["queue"])
        running = GaugeMetricFamily("spool_queue_started", "Jobs in the started registry", labels=["queue"])
        try:
            depth.add_metric([self._queue.name], self._queue.count)
            started = StartedJobRegistry(self._queue.name, connection=self._queue.connection)
            running.add_metric([self._queue.name], started.count)
        except redis.RedisError:
            REDIS_ERRORS.inc()
            return []
        return [depth, running]


def exposition(queue: Queue) -> tuple[bytes, str]:
    """The /metrics body and content type: every process's samples plus the queue."""
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        processes = CollectorRegistry()
        multiprocess.MultiProcessCollector(processes)
    else:
        processes = REGISTRY
    scraped = CollectorRegistry()
    scraped.register(QueueCollector(queue))
    scraped.register(RedisMemoryCollector(queue.connection))
    return generate_latest(processes) + generate_latest(scraped), CONTENT_TYPE_LATEST
