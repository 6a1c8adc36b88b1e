"""An RQ worker that runs many jobs at once in one process.

RQ's stock workers run one job per process; a generation mostly waits on the
network, so one process per live answer does not scale. ConcurrentWorker
keeps RQ's queues, registries and heartbeats, and runs each job in its own
thread (a greenlet under gevent) up to `concurrency` at a time.
"""

from __future__ import annotations

import logging
import os
import queue
import signal
import sys
import threading
import time
from collections.abc import Callable
from typing import Any

import redis
from rq import Queue
from rq.exceptions import DequeueTimeout
from rq.executions import Execution
from rq.job import Job
from rq.utils import now
from rq.worker import SimpleWorker, WorkerStatus

from worker.generation import RELEASED

log = logging.getLogger(__name__)

# Dequeue in short blocking steps so a stop request is noticed within this time.
DEQUEUE_STEP_SECONDS = 1
MAX_BACKOFF_SECONDS = 5.0
HEARTBEAT_SECONDS = 10
# Threads dequeuing jobs at once (see dequeue_job_and_maintain_ttl).
INTAKE_FETCHERS = 8


class _Prepared:
    """RQ's bookkeeping for a job that starts (its execution record, the
    started registry), done in a thread of its own."""

    def __init__(self, worker: ConcurrentWorker, job: Job) -> None:
        self.execution: Execution | None = None
        self._worker = worker
        self._job = job
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name=f"prepare-{job.id}", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        worker, job = self._worker, self._job
        # Under gevent, start() runs this thread until its first wait for I/O,
        # so RQ's Python would go before the answer's. Yielding first lets the
        # job's thread send its lease and start the model call first: about
        # 1 ms off the time to first token on a quiet worker.
        time.sleep(0)
        try:
            self.execution = worker.prepare_execution(job)
            with worker._running_lock:
                if job.id in worker._running:
                    worker._running[job.id] = (job, self.execution, worker._running[job.id][2])
            worker.prepare_job_execution(job, remove_from_intermediate_queue=len(worker.queues) == 1)
        except BaseException as exc:  # raised again by wait()
            self._error = exc

    def wait(self) -> Execution:
        """The execution once the bookkeeping is done; raises what it raised."""
        self._thread.join()
        if self._error is not None:
            raise self._error
        assert self.execution is not None
        return self.execution


class ConcurrentWorker(SimpleWorker):
    """Runs up to `concurrency` jobs at once; `runner(*job.args)` does the work."""

    def __init__(
        self,
        queues: list[Queue],
        *,
        runner: Callable[..., Any],
        concurrency: int,
        grace_seconds: float = 30.0,
        release: Callable[[], list[str]] = list,
        hand_over: Callable[[str], None] = lambda stream_id: None,
        **kwargs: Any,
    ) -> None:
        kwargs.setdefault("job_monitoring_interval", HEARTBEAT_SECONDS)
        super().__init__(queues, **kwargs)
        self._runner = runner
        self._grace_seconds = grace_seconds
        self._release = release
        self._hand_over = hand_over
        self._slots = threading.BoundedSemaphore(concurrency)
        self._running: dict[str, tuple[Job, Execution | None, threading.Thread]] = {}
        self._running_lock = threading.Lock()
        self._last_beat = 0.0
        self._fetched: queue.SimpleQueue = queue.SimpleQueue()
        self._fetchers_alive = 0
        self._beats_stopped = threading.Event()

    @property
    def running(self) -> int:
        with self._running_lock:
            return len(self._running)

    def _install_signal_handlers(self) -> None:
        signal.signal(signal.SIGINT, self._on_stop_signal)
        signal.signal(signal.SIGTERM, self._on_stop_signal)

    def _on_stop_signal(self, signum: int, frame: Any) -> None:
        if self._stop_requested:
            log.warning("second stop signal: exiting now, %d generations abandoned", self.running)
            os._exit(1)
        log.info("stop requested: taking no new jobs, finishing %d running", self.running)
        self._stop_requested = True
        self._shutdown_requested_date = now()

    def _set_ip_address(self, connection: Any) -> None:
        # fakeredis (`spool dev`) answers CLIENT INFO in a shape redis-py cannot parse.
        try:
            super()._set_ip_address(connection)
        except ValueError:
            self.ip_address = "unknown"

    def bootstrap(self, *args: Any, **kwargs: Any) -> None:
        super().bootstrap(*args, **kwargs)
        threading.Thread(target=self._beat_running_jobs, name="spool-rq-heartbeat", daemon=True).start()

    def dequeue_job_and_maintain_ttl(self, timeout: int | None, max_idle_time: int | None = None):
        """The next job, in steps short enough to see a stop request.

        Outside burst mode, INTAKE_FETCHERS threads dequeue in parallel: under
        load each Redis reply waits a turn of the event loop behind every
        running generation, and one dequeue at a time would cap how fast
        answers start. A job dequeued before a stop still runs."""
        if timeout is None:
            return self._dequeue(burst=True)
        self._start_fetchers()
        while True:
            self.heartbeat()
            try:
                result = self._fetched.get(timeout=DEQUEUE_STEP_SECONDS)
            except queue.Empty:
                with self._running_lock:
                    idle = self._fetchers_alive == 0
                if self._stop_requested and idle and self._fetched.empty():
                    return None
                continue
            if isinstance(result, BaseException):
                raise result
            job, job_queue = result
            log.info("job %s from %s", job.id, job_queue.name)
            return result

    def _start_fetchers(self) -> None:
        with self._running_lock:
            missing = INTAKE_FETCHERS - self._fetchers_alive
            self._fetchers_alive += max(missing, 0)
        for _ in range(missing):
            threading.Thread(target=self._fetch_jobs, name="spool-rq-intake", daemon=True).start()

    def _fetch_jobs(self) -> None:
        try:
            while not self._stop_requested:
                try:
                    result = self._dequeue(burst=False)
                except BaseException as exc:  # the dequeue loop raises it, as RQ's own would
                    self._fetched.put(exc)
                    return
                if result is not None:
                    self._fetched.put(result)
        finally:
            with self._running_lock:
                self._fetchers_alive -= 1

    def _dequeue(self, *, burst: bool):
        """Take a free slot and one job (None when stopping, or in burst mode
        when the queues are empty); the slot is kept only with a job."""
        backoff = 0.5
        while not self._stop_requested:
            if burst:  # else the fetchers run this, and the dequeue loop beats
                self.heartbeat()
            if not self._slots.acquire(timeout=DEQUEUE_STEP_SECONDS):
                continue
            try:
                result = self.queue_class.dequeue_any(
                    self._ordered_queues,
                    None if burst else DEQUEUE_STEP_SECONDS,
                    connection=self.connection,
                    job_class=self.job_class,
                    serializer=self.serializer,
                    death_penalty_class=self.death_penalty_class,
                )
            except DequeueTimeout:
                self._slots.release()
                continue
            except (redis.ConnectionError, redis.TimeoutError) as exc:
                # Redis restarting or failing over: wait for it rather than quit.
                self._slots.release()
                log.warning("cannot reach Redis to take jobs (%s); retrying in %.1fs", exc, backoff)
                time.sleep(backoff)
                backoff = min(backoff * 2, MAX_BACKOFF_SECONDS)
                continue
            except BaseException:
                self._slots.release()
                raise
            if result is None:
                self._slots.release()
                if burst:
                    return None
                continue
            return result
        return None

    def execute_job(self, job: Job, queue: Queue) -> None:
        """Start the job in its own thread and return at once.

        Everything but the dequeue happens in the job's thread: under load the
        dequeue loop waits a full turn of the event loop for each Redis reply,
        so each round trip taken out of it raises the rate at which answers start."""
        thread = threading.Thread(target=self._perform, args=(job, queue), name=f"job-{job.id}", daemon=True)
        with self._running_lock:
            self._running[job.id] = (job, None, thread)
        thread.start()

    def _perform(self, job: Job, queue: Queue) -> None:
        try:
            self.perform_job(job, queue)
        finally:
            with self._running_lock:
                self._running.pop(job.id, None)
                idle = not self._running
            self._slots.release()
            if idle:
                self.set_state(WorkerStatus.IDLE)

    def perform_job(self, job: Job, queue: Queue) -> bool:  # type: ignore[override]
        """RQ's perform_job, calling the runner instead of importing the job's
        function, with RQ's bookkeeping beside the runner rather than before
        it: two Redis round trips that the answer's first token need not wait for."""
        prepared = _Prepared(self, job)
        try:
            job.started_at = now()
            try:
                return_value = self._runner(*job.args)
            finally:
                execution = prepared.wait()
            if return_value == RELEASED:
                # Another worker runs it now (or will): only this execution ends.
                with self.connection.pipeline() as pipe:
                    self.cleanup_execution(job, pipe, execution)
                    pipe.execute()
                return True
            self._finalize_success(job, queue, execution, return_value)
        except Exception:
            self._finalize_failure(job, queue, prepared.execution, sys.exc_info())
            return False
        return True

    def teardown(self) -> None:
        """Let running jobs finish within the grace period, then stop the rest
        (`release`) and, once their threads are done, `hand_over` each, before
        the worker deregisters."""
        deadline = time.monotonic() + self._grace_seconds
        threads = self._running_threads()
        if threads:
            log.info("waiting up to %.0fs for %d running generations", self._grace_seconds, len(threads))
        for thread in threads:
            thread.join(max(0.0, deadline - time.monotonic()))
        if self._running_threads():
            log.warning("grace period over: handing %d generations to other workers", len(self._running_threads()))
            released = self._release()
            # Their threads end their RQ executions; only then requeue the jobs.
            for thread in self._running_threads():
                thread.join()
            for stream_id in released:
                self._hand_over(stream_id)
        self._beats_stopped.set()
        super().teardown()

    def _running_threads(self) -> list[threading.Thread]:
        with self._running_lock:
            return [thread for _, _, thread in self._running.values() if thread.is_alive()]

    def heartbeat(self, timeout: int | None = None, pipeline: Any = None) -> None:
        """RQ's worker heartbeat, sent at most every HEARTBEAT_SECONDS unless
        it rides on a pipeline. RQ's loop sends one after every job it starts:
        three round trips per answer, at hundreds of answers a second."""
        if pipeline is None and time.monotonic() - self._last_beat < HEARTBEAT_SECONDS:
            return
        super().heartbeat(timeout, pipeline)
        if pipeline is None:
            self._last_beat = time.monotonic()

    def _beat_running_jobs(self) -> None:
        """Keep each running job's execution alive in RQ's StartedJobRegistry."""
        while not self._beats_stopped.wait(self.job_monitoring_interval):
            with self._running_lock:
                running = [(job, execution) for job, execution, _ in self._running.values() if execution is not None]
            for job, execution in running:
                try:
                    self.maintain_heartbeats(job, execution)
                except Exception:
                    log.warning("job %s: heartbeat failed", job.id, exc_info=True)
