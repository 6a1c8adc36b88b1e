"""One job's run on the worker's own loop (worker/runner.py): its generation,
retried while its lease cannot be taken, and RQ's records of how it went.

RQ's records never hold up the answer: the start (once the lease is taken)
and the end go to the process's RecordWriter (worker/rq_records.py), which
writes them in batches; one that fails is left to the reconciler
(worker/reconcile.py).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from enum import Enum

from rq.job import Job

from spool.events import StreamStatus
from spool.redis_health import is_transient
from worker.generation import GenerationFailed, RunOutcome, StartFailed
from worker.rq_books import RQBooks
from worker.rq_records import RecordWriter

log = logging.getLogger(__name__)

# Tries at a job's lease before leaving it to the reconciler (0.5 s, 1 s, 2 s apart).
START_ATTEMPTS = 4


class Unended(Enum):
    """How a run ended when its stream did not."""

    STOPPED = "stopped"  # stopped midway: the lease path carries it on
    UNSTARTED = "unstarted"  # never started: still queued (left to the reconciler), or another worker has it


def best_effort(action: Callable[[], None]) -> None:
    """Best-effort RQ bookkeeping: logged, never raised."""
    try:
        action()
    except Exception as exc:
        log.warning("RQ bookkeeping failed (%r); the reconciler will catch up", exc)


class JobRun:
    """Runs `job` with `run(stream_id, on_leased)`; its start and end go to
    `records`. `stopping`: the worker takes no new work (no more start
    retries); `stopped`: the process is leaving."""

    def __init__(self, job: Job, books: RQBooks, records: RecordWriter,
                 run: Callable[[str, Callable[[], None]], RunOutcome], *,
                 stopping: threading.Event, stopped: threading.Event) -> None:
        self._job = job
        self._books = books
        self._records = records
        self._run = run
        self._stopping = stopping
        self._stopped = stopped

    def perform(self) -> None:
        """Run the job to its end; logs, never raises, what went wrong."""
        job = self._job
        try:
            status = self._outcome()
            # After the start's record, if any: the writer keeps their order.
            if status is Unended.STOPPED:
                self._records.stopped(job)
            elif isinstance(status, StreamStatus):
                self._records.ended(job, status.value)
        except Exception:
            log.exception("stream %s: the job failed", job.id)

    def _outcome(self) -> StreamStatus | Unended:
        """Run the job; returns its stream's terminal status, or Unended (its
        start retried, then left queued to the reconciler; or stopped midway)."""
        job = self._job
        delay = 0.5
        for attempt in range(1, START_ATTEMPTS + 1):
            try:
                status = self._run(job.id, self._on_leased)
                break
            except StartFailed as exc:
                if attempt == START_ATTEMPTS or self._stopping.is_set():
                    log.warning("%s; leaving it queued for the reconciler", exc.__cause__ or exc)
                    return Unended.UNSTARTED
                (log.info if is_transient(exc.__cause__ or exc) else log.warning)(
                    "%s; retrying in %.1fs", exc, delay)
                self._stopped.wait(delay)
                delay *= 2
            except GenerationFailed:
                return StreamStatus.ERROR
            except Exception as exc:
                # Redis refusing writes, or a bug after the `error` event: the
                # stream's lease (or the reconciler, if it ended) settles it.
                log.warning("stream %s: generation raised %r; its lease carries it on", job.id, exc)
                return Unended.STOPPED
        if status is RunOutcome.RELEASED:
            return Unended.STOPPED
        if status.is_terminal:
            return StreamStatus(status.value)
        if status is RunOutcome.MISSING:
            return StreamStatus.ERROR
        # Not ours: another worker holds its lease.
        best_effort(lambda: self._books.left_queue(job.id))
        return Unended.UNSTARTED

    def _on_leased(self) -> None:
        """The lease is ours: RQ's record of the start, written in the background."""
        self._records.started(self._job)
