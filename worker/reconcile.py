"""No job stranded between RQ's queue and a stream's lease.

RQ moves each job it hands out to the queue's intermediate list
(`rq:queue:<name>:intermediate`) until the worker records it started. A
worker that dies, or meets a Redis refusing writes, in that moment leaves the
job there with its stream still `queued` and no lease: no reaper would ever
see it, and RQ's own clean-up would mark it failed without the stream's
terminal event. Every worker runs this pass on start and every lease period:

- a job whose stream ended, is leased, or is gone leaves the list (and RQ's
  registries are brought in line with a stream that ended);
- a job whose stream is still queued without a lease, once it has been in the
  list longer than `stranded_after` (RQ's first-seen stamp), is put back on
  the queue, at most `max_attempts` times, and then its stream is ended with
  an `error` event (`worker_lost`), exactly as a lost lease would be. Before
  it goes back, its stream is marked so that the rerun's `reset` lands past
  every seq its lost run may have served (Leases.prepare_rerun): after a
  failover that lost the lease with its worker, nothing here can tell a run
  that wrote events from one that never began.
"""

from __future__ import annotations

import logging
import time

from spool.errors import StreamNotFoundError
from spool.events import StreamStatus
from spool.redis_health import is_transient
from spool.streams import StreamStore
from worker.periodic import Periodic
from worker.rq_books import EXECUTION_TTL, HEARTBEAT_SECONDS, RQBooks

log = logging.getLogger(__name__)

# RQ's job meta key counting the times a stranded job was put back.
REQUEUES = "spool_requeues"


class Reconciler:
    """Sweeps the queue's intermediate list on a thread of its own."""

    def __init__(self, store: StreamStore, books: RQBooks, *, interval: float, stranded_after: float,
                 max_attempts: int) -> None:
        self._store = store
        self._books = books
        self._stranded_after = stranded_after
        self._max_attempts = max_attempts
        self._loop = Periodic("spool-reconciler", interval, self.sweep, what="reconcile pass", at_once=True,
                              expected=is_transient)

    def start(self) -> None:
        self._loop.start()

    def stop(self) -> None:
        self._loop.stop()

    def sweep(self) -> int:
        """One pass over the intermediate list and the started registry's
        stale executions (where a job whose lease was reclaimed stays if
        putting it back failed); returns how many jobs it moved on."""
        books = self._books
        intermediate = books.intermediate.get_job_ids()
        registry = books.queue.started_job_registry
        # Only executions nobody has beaten for 3 heartbeats: the running ones are beaten every HEARTBEAT_SECONDS.
        stale = books.queue.connection.zrangebyscore(registry.key, "-inf", time.time() + EXECUTION_TTL
                                                     - 3 * HEARTBEAT_SECONDS)
        started = {registry.parse_job_id(entry.decode()) for entry in stale}
        moved = 0
        for stream_id in intermediate:
            moved += self._reconcile(stream_id, in_intermediate=True)
        for stream_id in started.difference(intermediate):
            moved += self._reconcile(stream_id, in_intermediate=False)
        return moved

    def _reconcile(self, stream_id: str, *, in_intermediate: bool) -> bool:
        books = self._books
        try:
            meta = self._store.meta(stream_id)
        except StreamNotFoundError:
            log.info("stream %s: gone; its job leaves RQ's lists", stream_id)
            books.settle(stream_id, StreamStatus.ERROR.value)
            self._forget(stream_id, in_intermediate)
            return True
        if meta.status.is_terminal:
            books.settle(stream_id, meta.status.value)
            self._forget(stream_id, in_intermediate)
            return in_intermediate
        if meta.status is not StreamStatus.QUEUED or meta.leased:
            return False  # a lease holds it: its worker, or the lease reaper, ends it
        if books.intermediate.set_first_seen(stream_id):
            return False  # first seen now: a worker may be taking its lease this moment
        first_seen = books.intermediate.get_first_seen(stream_id)
        if first_seen is None or time.time() - first_seen.timestamp() < self._stranded_after:
            return False
        if books.queue.connection.lpos(books.queue.key, stream_id) is not None:
            self._forget(stream_id, in_intermediate)  # put back already (a lease's reclaim requeued it)
            return in_intermediate
        if not in_intermediate and stream_id in books.intermediate.get_job_ids():
            return False  # a worker is taking it now
        self._requeue_or_end(stream_id, in_intermediate)
        return True

    def _requeue_or_end(self, stream_id: str, in_intermediate: bool) -> None:
        books = self._books
        job = books.queue.fetch_job(stream_id)
        requeues = int(job.meta.get(REQUEUES, 0)) if job is not None else 0
        if requeues + 1 >= self._max_attempts:
            message = f"no worker could start the answer ({requeues + 1} tries)"
            if self._store.fail(stream_id, "worker_lost", message):
                log.warning("stream %s: %s; ended with an error", stream_id, message)
                books.settle(stream_id, StreamStatus.ERROR.value)
            self._forget(stream_id, in_intermediate)
            return
        # Its lost run may have written events clients read (docs/reliability.md, "Failover"): the rerun skips them.
        try:
            marked = self._store.leases.prepare_rerun(stream_id, "worker_lost")
        except StreamNotFoundError:
            marked = False  # expired meanwhile: the next pass lets its job go
        if not marked:
            return  # or a worker took its lease meanwhile
        if job is not None:
            job.meta[REQUEUES] = requeues + 1
            job.save_meta()
        log.warning("stream %s: its job was stranded before its lease; putting it back on the queue", stream_id)
        books.requeue(stream_id, from_intermediate=in_intermediate)
        books.queue.connection.delete(books.intermediate.get_first_seen_key(stream_id))

    def _forget(self, stream_id: str, in_intermediate: bool) -> None:
        if in_intermediate:
            self._books.left_queue(stream_id)
        self._books.queue.connection.delete(self._books.intermediate.get_first_seen_key(stream_id))
