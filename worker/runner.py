"""The worker's own loop: take jobs off RQ's queue and run many at once.

RQ's stock workers run one job per process; a generation mostly waits on the
network, so one process per live answer does not scale. JobRunner takes jobs
with RQ's public `Queue.dequeue_any` from several intake threads at once
(under load each Redis reply waits a turn of the event loop behind every
running generation, so one dequeue at a time would cap how fast answers
start), and runs each in its own thread (a greenlet under gevent) up to
`concurrency` at a time (worker/job_run.py: one job's run and RQ's records of it,
kept through worker/rq_books.py).

A Redis that is away or refuses writes (OOM, READONLY) never ends the
process: every loop here backs off and carries on when Redis is back. A job
whose lease could not be taken is retried briefly, then left for the
reconciler (worker/reconcile.py), which requeues or ends it.
"""

from __future__ import annotations

import logging
import os
import signal
import threading
import time
from collections.abc import Callable
from typing import Any

import redis
from rq import Queue
from rq.exceptions import DequeueTimeout
from rq.job import Job

from spool.queueing import SERIALIZER
from worker.job_run import JobRun, best_effort
from worker.periodic import Periodic
from worker.rq_books import HEARTBEAT_SECONDS, RQBooks
from worker.rq_records import RecordWriter

log = logging.getLogger(__name__)

# A blocking dequeue waits this long, so a stop request is noticed within it.
DEQUEUE_STEP_SECONDS = 1
MAX_BACKOFF_SECONDS = 5.0
# Threads dequeuing jobs at once (see the module's docstring).
INTAKE_FETCHERS = 8


class JobRunner:
    """Runs up to `concurrency` jobs at once; `run(stream_id, on_leased)` does the work."""

    def __init__(
        self,
        queue: Queue,
        books: RQBooks,
        *,
        run: Callable[[str, Callable[[], None]], str],
        concurrency: int,
        grace_seconds: float = 30.0,
        release: Callable[[], list[str]] = list,
        hand_over: Callable[[str], None] = lambda stream_id: None,
        reject: Callable[[str], None] = lambda stream_id: None,
        fetchers: int = INTAKE_FETCHERS,
    ) -> None:
        self._queue = queue
        self._books = books
        self._run = run
        self._grace_seconds = grace_seconds
        self._release = release
        self._hand_over = hand_over
        self._reject = reject
        self._fetchers = fetchers
        self._slots = threading.BoundedSemaphore(concurrency)
        self._running: dict[str, threading.Thread] = {}
        self._lock = threading.Lock()
        self._stopping = threading.Event()  # no new jobs
        self._stopped = threading.Event()  # the process is leaving: background loops end
        self._records = RecordWriter(books, self._stopped)

    @property
    def running(self) -> int:
        with self._lock:
            return len(self._running)

    def request_stop(self, signum: int = signal.SIGTERM, frame: Any = None) -> None:
        """Take no new jobs; running ones finish within the grace period. A
        second request exits at once."""
        if self._stopping.is_set():
            log.warning("second stop signal: exiting now, %d generations abandoned", self.running)
            os._exit(1)
        log.info("stop requested: taking no new jobs, finishing %d running", self.running)
        self._stopping.set()

    def work(self, burst: bool = False) -> bool:
        """Run jobs until stopped (or, in burst mode, until the queue is empty)."""
        if threading.current_thread() is threading.main_thread():
            signal.signal(signal.SIGINT, self.request_stop)
            signal.signal(signal.SIGTERM, self.request_stop)
        self._until_redis_accepts("registering with RQ", self._books.register)
        heartbeat = Periodic("spool-rq-heartbeat", HEARTBEAT_SECONDS, self._books.beat, what="RQ heartbeat")
        heartbeat.start()
        self._records.start()
        log.info("worker %s: taking jobs from %r", self._books.name, self._queue.name)
        try:
            if burst:
                self._drain()
            else:
                fetchers = [threading.Thread(target=self._fetch, name="spool-intake", daemon=True)
                            for _ in range(self._fetchers)]
                for thread in fetchers:
                    thread.start()
                # Woken by the stop request; the timeout only lets signals in without gevent.
                while not self._stopping.wait(1.0):
                    pass
                for thread in fetchers:
                    thread.join()
            self._finish_running(None if burst else self._grace_seconds)
        finally:
            heartbeat.stop()
            self._records.close()  # the runs' last records, before the worker leaves RQ
            self._stopped.set()
            self._books.deregister()
        return True

    # Intake -------------------------------------------------------------------

    def _fetch(self) -> None:
        """One intake thread: a free slot, then a job, until stopped."""
        backoff = 0.5
        while not self._stopping.is_set():
            if not self._slots.acquire(timeout=DEQUEUE_STEP_SECONDS):
                continue
            try:
                taken = self._dequeue(DEQUEUE_STEP_SECONDS)
            except redis.RedisError as exc:
                self._slots.release()
                # Redis restarting, failing over or full: wait for it rather than quit.
                log.warning("cannot take jobs from Redis (%s); retrying in %.1fs", exc, backoff)
                self._stopping.wait(backoff)
                backoff = min(backoff * 2, MAX_BACKOFF_SECONDS)
                continue
            except BaseException:
                self._slots.release()
                raise
            backoff = 0.5
            if taken is None:
                self._slots.release()
            else:
                self._start(taken)

    def _drain(self) -> None:
        """Burst mode: take jobs without waiting until none is left."""
        while not self._stopping.is_set():
            self._slots.acquire()
            try:
                taken = self._dequeue(None)
            except BaseException:
                self._slots.release()
                raise
            if taken is None:
                self._slots.release()
                return
            self._start(taken)

    def _dequeue(self, timeout: int | None) -> Job | None:
        """The next job (None if none came); a job RQ cannot read ends its stream."""
        try:
            taken = Queue.dequeue_any([self._queue], timeout, connection=self._queue.connection,
                                      serializer=SERIALIZER)
        except DequeueTimeout:
            return None
        except redis.RedisError:
            raise
        except Exception as exc:
            # Not JSON (written by something else), or not a job at all: it can never run.
            stream_id = getattr(exc, "job_id", None)
            log.error("stream %s: its job could not be read (%r)", stream_id, exc)
            if stream_id is not None:
                best_effort(lambda: self._reject(stream_id))
            return None
        return None if taken is None else taken[0]

    def _start(self, job: Job) -> None:
        """Run `job` in its own thread, which gives its slot back when done."""
        thread = threading.Thread(target=self._perform, args=(job,), name=f"job-{job.id}", daemon=True)
        with self._lock:
            self._running[job.id] = thread
            first = len(self._running) == 1
        thread.start()
        if first:
            best_effort(lambda: self._books.busy(True))

    def _perform(self, job: Job) -> None:
        try:
            JobRun(job, self._books, self._records, self._run, stopping=self._stopping,
                   stopped=self._stopped).perform()
        finally:
            with self._lock:
                self._running.pop(job.id, None)
                idle = not self._running
            self._slots.release()
            if idle:
                best_effort(lambda: self._books.busy(False))

    # Process lifecycle -------------------------------------------------------

    def _until_redis_accepts(self, what: str, action: Callable[[], None]) -> None:
        delay = 0.5
        while not self._stopping.is_set():
            try:
                action()
                return
            except redis.RedisError as exc:
                log.warning("%s failed (%s); retrying in %.1fs", what, exc, delay)
                self._stopping.wait(delay)
                delay = min(delay * 2, MAX_BACKOFF_SECONDS)

    def _finish_running(self, grace: float | None) -> None:
        """Let running jobs finish within `grace` seconds (None: however long
        they take), then stop the rest (`release`) and, once their threads are
        done, `hand_over` each."""
        threads = self._threads()
        if threads:
            log.info("waiting up to %s for %d running generations",
                     "their end" if grace is None else f"{grace:.0f}s", len(threads))
        deadline = None if grace is None else time.monotonic() + grace
        for thread in threads:
            thread.join(None if deadline is None else max(0.0, deadline - time.monotonic()))
        if self._threads():
            log.warning("grace period over: handing %d generations to other workers", len(self._threads()))
            released = self._release()
            # Their threads end their RQ executions; only then requeue the jobs.
            for thread in self._threads():
                thread.join()
            self._records.flush()
            for stream_id in released:
                self._hand_over(stream_id)

    def _threads(self) -> list[threading.Thread]:
        with self._lock:
            return [thread for thread in self._running.values() if thread.is_alive()]
