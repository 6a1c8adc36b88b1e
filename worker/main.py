"""Assembling a worker process (`spool worker`)."""

from __future__ import annotations

import functools
import logging

from rq import Queue

from spool.keys import Keys
from spool.redis_client import connect, connect_blocking
from spool.settings import Settings
from spool.store import StreamStore
from worker.control import CancelListener
from worker.generation import GenerationContext, Generations, run_generation
from worker.publisher import Flusher
from worker.rq_worker import ConcurrentWorker
from worker.upstream import Upstream

log = logging.getLogger(__name__)


def run_worker(settings: Settings, *, concurrency: int, burst: bool = False, name: str | None = None) -> bool:
    """Run generations from the queue until stopped (or, in burst mode, until it is empty)."""
    # Generations interleave short commands; a few connections serve many of them.
    client = connect(settings.redis_url, max_connections=min(concurrency, 48) + 8)
    # Stream writes and cancel requests go to the streams' Redis (the same one unless split).
    streams = client if settings.streams_url == settings.redis_url else connect(
        settings.streams_url, max_connections=min(concurrency, 48) + 8
    )
    keys = Keys(settings.key_prefix)
    generations = Generations()
    flusher = Flusher(settings.coalesce_ms / 1000)
    ctx = GenerationContext(
        settings=settings,
        store=StreamStore(streams, keys, settings.stream_ttl),
        upstream=Upstream(settings, connections=concurrency),
        generations=generations,
        flusher=flusher,
    )
    listener = CancelListener(
        lambda: connect_blocking(settings.streams_url, block_seconds=1), keys.control_channel, generations
    )
    worker = ConcurrentWorker(
        [Queue(settings.queue, connection=client)],
        connection=client,
        runner=functools.partial(run_generation, ctx),
        concurrency=concurrency,
        name=name,
    )
    flusher.start()
    listener.start()
    log.info("worker %s: up to %d concurrent generations on queue %r", worker.name, concurrency, settings.queue)
    try:
        return worker.work(burst=burst, logging_level=None)
    finally:
        listener.stop()
        flusher.stop()
