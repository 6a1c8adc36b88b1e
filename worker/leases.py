"""Leases: how a lost worker's answers move to another worker in seconds.

Every running generation holds a short lease in its stream's metadata,
renewed by its worker's LeaseKeeper. Every LeaseKeeper also looks for leases
that expired (the worker was killed, lost its host, or froze) and reclaims
those streams: requeued to run again (the next run starts with `reset`), or
ended with `error` once their attempts are used up. RQ's registries are
brought in line with what happened.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

from spool.events import StreamStatus
from spool.streams import Reclaim, StreamStore
from worker.periodic import Periodic
from worker.rq_books import RQBooks

log = logging.getLogger(__name__)


def settle_rq_job(books: RQBooks, stream_id: str, outcome: Reclaim) -> None:
    """Make RQ's view of a reclaimed stream's job match `outcome`."""
    if outcome is Reclaim.REQUEUE:
        books.requeue(stream_id)
    elif outcome is Reclaim.FAILED:
        books.settle(stream_id, StreamStatus.ERROR.value)
    elif outcome is Reclaim.CANCELLED:
        books.settle(stream_id, StreamStatus.CANCELLED.value)


class LeaseKeeper:
    """Renews this process's leases and reclaims expired ones, on one thread."""

    def __init__(self, store: StreamStore, books: RQBooks, lease_seconds: float, max_attempts: int) -> None:
        self._store = store
        self._books = books
        self._lease = lease_seconds
        self._max_attempts = max_attempts
        self._owned: dict[str, tuple[str, Callable[[], None]]] = {}
        self._lock = threading.Lock()
        # Renew well before expiry: two renewals may fail before the lease is lost.
        self._upkeep = Periodic("spool-leases", lease_seconds / 3, self._tend, what="lease upkeep")

    def start(self) -> None:
        self._upkeep.start()

    def stop(self) -> None:
        self._upkeep.stop()

    def track(self, stream_id: str, writer: str, on_lost: Callable[[], None]) -> None:
        """Renew `stream_id`'s lease for `writer`; call `on_lost` if it is taken away."""
        with self._lock:
            self._owned[stream_id] = (writer, on_lost)

    def untrack(self, stream_id: str) -> None:
        with self._lock:
            self._owned.pop(stream_id, None)

    def hand_over(self, stream_id: str, reason: str) -> Reclaim:
        """Give up a stream this process stopped generating (shutdown): requeue it now."""
        outcome, _ = self._store.leases.reclaim(stream_id, reason, self._max_attempts, force=True)
        settle_rq_job(self._books, stream_id, outcome)
        return outcome

    def _tend(self) -> None:
        self._renew()
        self._reap()

    def _renew(self) -> None:
        with self._lock:
            owned = {stream_id: writer for stream_id, (writer, _) in self._owned.items()}
        if not owned:
            return
        for stream_id in self._store.leases.renew(owned, self._lease):
            with self._lock:
                entry = self._owned.pop(stream_id, None)
            # Not owned any more: its answer ended (and was untracked) while
            # the renewal ran, which finds it no longer running. Not a loss.
            if entry is not None:
                log.warning("stream %s: lease lost to another worker; stopping here", stream_id)
                entry[1]()

    def _reap(self) -> None:
        for stream_id in self._store.leases.expired():
            with self._lock:
                if stream_id in self._owned:
                    continue  # ours and alive: the renewal above is under way
            outcome, attempt = self._store.leases.reclaim(stream_id, "worker_lost", self._max_attempts)
            if outcome in (Reclaim.ALIVE, Reclaim.GONE):
                continue
            log.warning("stream %s: its worker was lost; %s (attempt %d)", stream_id, outcome.value, attempt)
            settle_rq_job(self._books, stream_id, outcome)
