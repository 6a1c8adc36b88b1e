"""Writing RQ's records of jobs' starts and ends in batches, off the answers' path.

A transaction per job start and another per end was a sixth of a worker's
CPU per answer (docs/benchmarks.md): each is a round trip with its own wait
for the event loop. One thread writes them instead: whatever records came
in while it wrote the last batch go together in the next transaction, in
the order they came (a job's end after its start), gathered for up to
GATHER_SECONDS. An answer never waits
for them; a batch that keeps failing is logged and left to the reconciler
(worker/reconcile.py), as a single record was.
"""

from __future__ import annotations

import logging
import threading
import time

import redis
from rq.job import Job

from worker.rq_books import ENDED, STARTED, STOPPED, Record, RQBooks

log = logging.getLogger(__name__)

# Tries at one batch (0.5 s, 1 s, 2 s apart) before leaving it to the reconciler.
ATTEMPTS = 4
# How long the first record of a batch waits for others: nobody waits on
# these records, and under load a batch then holds dozens of jobs' records.
GATHER_SECONDS = 0.05


class RecordWriter:
    """One thread writing `books`' job records in batches until `close()`.
    `stopped` (the process is leaving at once) cuts retries short."""

    def __init__(self, books: RQBooks, stopped: threading.Event) -> None:
        self._books = books
        self._stopped = stopped
        self._pending: list[Record] = []
        self._writing = False  # a batch is being written
        self._closing = False
        self._changed = threading.Condition()
        self._thread = threading.Thread(target=self._run, name="spool-rq-records", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def started(self, job: Job) -> None:
        """This worker leased the job's stream (RQBooks.started)."""
        self._add((STARTED, job, None))

    def ended(self, job: Job, status: str) -> None:
        """The job's stream ended with `status` (RQBooks.ended)."""
        self._add((ENDED, job, status))

    def stopped(self, job: Job) -> None:
        """The run stopped without ending its stream (RQBooks.stopped)."""
        self._add((STOPPED, job, None))

    def flush(self) -> None:
        """Wait until every record added so far was written (or given up)."""
        with self._changed:
            while (self._pending or self._writing) and self._thread.is_alive():
                self._changed.wait()

    def close(self) -> None:
        """Write what is pending, then end the thread (waits for both)."""
        with self._changed:
            self._closing = True
            self._changed.notify_all()
        if self._thread.is_alive():
            self._thread.join()

    def _add(self, record: Record) -> None:
        with self._changed:
            self._pending.append(record)
            self._changed.notify_all()

    def _run(self) -> None:
        while True:
            with self._changed:
                self._writing = False
                self._changed.notify_all()  # for flush()
                while not self._pending and not self._closing:
                    self._changed.wait()
                gathered = time.monotonic() + GATHER_SECONDS
                while not self._closing and (left := gathered - time.monotonic()) > 0:
                    self._changed.wait(left)
                batch, self._pending = self._pending, []
                self._writing = bool(batch)
            if not batch:
                return  # closing, and nothing left
            self._write(batch)

    def _write(self, batch: list[Record]) -> None:
        delay = 0.5
        for attempt in range(1, ATTEMPTS + 1):
            try:
                self._books.record(batch)
                return
            except redis.RedisError as exc:
                if attempt == ATTEMPTS:
                    log.warning("RQ's records of %d jobs failed %d times (%s); leaving them to the reconciler",
                                len(batch), ATTEMPTS, exc)
                    return
                log.info("RQ's records of %d jobs failed (%s); retrying in %.1fs", len(batch), exc, delay)
            except Exception:
                log.exception("RQ's records of %d jobs failed; leaving them to the reconciler", len(batch))
                return
            if self._stopped.wait(delay):
                return
            delay *= 2
