"""Assembling a worker process (`spool worker`)."""

from __future__ import annotations

import functools
import logging
import uuid

from spool.events import StreamStatus
from spool.keys import Keys
from spool.queueing import spool_queue
from spool.redis_client import connect, connect_blocking, connect_queue, node_of, pubsub_factory
from spool.redis_polls import check_connections_without_yielding
from spool.settings import Settings
from spool.streams import StreamStore
from worker import metrics
from worker.control import CancelListener
from worker.generation import GenerationContext, Generations, run_generation
from worker.leases import LeaseKeeper
from worker.publisher import Flusher
from worker.reconcile import Reconciler
from worker.rq_books import RQBooks
from worker.runner import INTAKE_FETCHERS, JobRunner
from worker.upstream import Upstream

log = logging.getLogger(__name__)


def run_worker(
    settings: Settings, *, concurrency: int, burst: bool = False, name: str | None = None, metrics_port: int = 0
) -> bool:
    """Run generations from the queue until stopped (or, in burst mode, until it is empty)."""
    # Generations interleave short commands; a few connections serve many of
    # them, besides one per intake thread blocked in its dequeue.
    pool_size = min(concurrency, 48) + INTAKE_FETCHERS + 8
    check_connections_without_yielding()
    client = connect_queue(settings.redis_url, max_connections=pool_size)
    # Stream writes and cancel requests go to the streams' Redis (the same one unless split).
    streams = client if settings.streams_url == settings.redis_url else connect(
        settings.streams_url, max_connections=min(concurrency, 48) + 8
    )
    keys = Keys(settings.key_prefix)
    generations = Generations()
    # This process's cancel channel, recorded in the leases it takes.
    control = keys.control_channel(name or uuid.uuid4().hex)
    store = StreamStore(streams, keys, settings.stream_ttl, control=control)
    flusher = Flusher(store, settings.coalesce_ms / 1000)
    queue = spool_queue(settings.queue, client)
    books = RQBooks(queue, name, settings.stream_ttl)
    leases = LeaseKeeper(store, books, settings.lease_seconds, settings.max_attempts)
    reconciler = Reconciler(store, books, interval=settings.lease_seconds, stranded_after=2 * settings.lease_seconds,
                            max_attempts=settings.max_attempts)
    upstream = Upstream(settings, connections=concurrency)
    try:
        upstream.warm()
    except Exception:  # noqa: BLE001  (a slower first answer, not a reason to refuse work)
        log.warning("the SDK's warm-up failed; the first answers will start slower", exc_info=True)
    ctx = GenerationContext(
        settings=settings,
        store=store,
        upstream=upstream,
        generations=generations,
        flusher=flusher,
        leases=leases,
    )
    if node_of(streams, control):  # a cluster: subscribe on the node serving the channel's slot
        node_client = pubsub_factory(settings.streams_url, streams)
        listener_client = lambda: node_client(node_of(streams, control))  # noqa: E731
    else:
        listener_client = lambda: connect_blocking(settings.streams_url, block_seconds=1)  # noqa: E731
    listener = CancelListener(listener_client, control, generations)

    def hand_over(stream_id: str) -> None:
        # Requeued after its generation stopped writing: the next worker reruns from `reset`.
        outcome = leases.hand_over(stream_id, "worker_shutdown")
        log.info("stream %s: handed over on shutdown (%s)", stream_id, outcome.value)

    def reject(stream_id: str) -> None:
        # A job that cannot be read can never run: its stream ends now.
        message = "the queued job could not be read"
        store.fail(stream_id, "internal_error", message)
        books.settle(stream_id, StreamStatus.ERROR.value)
        books.left_queue(stream_id)

    runner = JobRunner(
        queue,
        books,
        run=functools.partial(run_generation, ctx),
        concurrency=concurrency,
        grace_seconds=settings.worker_grace_seconds,
        release=generations.release_all,
        hand_over=hand_over,
        reject=reject,
    )
    # RQ sets its loggers to INFO when imported; they follow SPOOL_LOG_LEVEL instead.
    level = logging.getLogger().getEffectiveLevel()
    for logger_name in ("rq", "rq.worker", "rq.job", "rq.queue"):
        logging.getLogger(logger_name).setLevel(level)
    flusher.start()
    listener.start()
    leases.start()
    reconciler.start()
    if metrics_port:
        metrics.serve(metrics_port, concurrency, lambda: runner.running, client)
    log.info("worker %s: up to %d concurrent generations on queue %r", books.name, concurrency, settings.queue)
    try:
        return runner.work(burst=burst)
    finally:
        reconciler.stop()
        leases.stop()
        listener.stop()
        flusher.stop()
