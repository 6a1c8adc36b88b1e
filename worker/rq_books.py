"""RQ's view of spool's work, kept through RQ's public API only.

spool's leases own liveness and retry; RQ keeps what `rq info`, RQ's
dashboards and /readyz read: the worker's registration and heartbeat, each
job's status and the started, finished, failed and canceled registries.
Nothing here decides a stream's fate, and a failure here never ends a
stream: the worker logs it, and the reconciler (worker/reconcile.py) brings
RQ's view back in line once Redis accepts writes again.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
from collections.abc import Sequence

import redis
from rq import Queue, Worker
from rq.executions import Execution
from rq.intermediate_queue import IntermediateQueue
from rq.job import Job, JobStatus
from rq.worker import WorkerStatus

from spool.events import StreamStatus
from spool.queueing import SERIALIZER, enqueue_generation

log = logging.getLogger(__name__)

# The worker's and its executions' heartbeats; /readyz counts a worker whose
# last beat is at most 30 s old (gateway/ops_routes.py).
HEARTBEAT_SECONDS = 10
# An execution lives this long past its last beat before RQ may call it abandoned.
EXECUTION_TTL = 3 * HEARTBEAT_SECONDS + 60

# What a record says of a job (RQBooks.record): this worker started it, ended
# its stream (with a terminal status), or stopped without ending it.
STARTED, ENDED, STOPPED = "started", "ended", "stopped"
Record = tuple[str, Job, str | None]

# How each way a job ends shows in RQ.
_STATUS_OF = {
    StreamStatus.DONE.value: JobStatus.FINISHED,
    StreamStatus.ERROR.value: JobStatus.FAILED,
    StreamStatus.CANCELLED.value: JobStatus.CANCELED,
}


class RQBooks:
    """This worker process's records in RQ: its registration and its jobs'."""

    def __init__(self, queue: Queue, name: str | None, ttl: int) -> None:
        self.queue = queue
        self.ttl = ttl
        # prepare_for_work=False: no CLIENT SETNAME/INFO, whose reply the
        # embedded development server shapes differently; pid and host are set here.
        self.worker = Worker([queue], connection=queue.connection, name=name, serializer=SERIALIZER,
                             prepare_for_work=False)
        self.worker.hostname = socket.gethostname()
        self.worker.pid = os.getpid()
        self.intermediate = IntermediateQueue(queue.key, queue.connection)
        self._executions: dict[str, Execution] = {}
        self._lock = threading.Lock()

    @property
    def name(self) -> str:
        return self.worker.name

    # The worker's registration -------------------------------------------

    def register(self) -> None:
        """Register this worker (after a previous run's record, if any, is
        marked dead). Raises redis errors."""
        self.worker.register_birth()
        self.worker.set_state(WorkerStatus.IDLE)

    def beat(self) -> None:
        """The worker's and its running executions' heartbeats, in one round
        trip; registers again if Redis lost the record (a restart without
        persistence). Raises redis errors."""
        if not self.queue.connection.exists(self.worker.key):
            log.warning("worker %s: RQ's record of it was gone; registering again", self.name)
            self.register()
        with self._lock:
            executions = list(self._executions.values())
        with self.queue.connection.pipeline() as pipe:
            self.worker.heartbeat(pipeline=pipe)
            for execution in executions:
                execution.heartbeat(self.queue.started_job_registry, EXECUTION_TTL, pipe)
            pipe.execute()

    def deregister(self) -> None:
        """Mark this worker dead in RQ (best effort: it is leaving anyway)."""
        try:
            self.worker.register_death()
        except redis.RedisError as exc:
            log.warning("worker %s: could not deregister from RQ (%s); its record expires by itself", self.name, exc)

    def busy(self, busy: bool) -> None:
        """Show the worker busy (some generation runs) or idle."""
        self.worker.set_state(WorkerStatus.BUSY if busy else WorkerStatus.IDLE)

    # A job's records --------------------------------------------------------

    def started(self, job: Job) -> None:
        """Record a job whose stream this worker leased: an execution in the
        started registry, status started, out of the intermediate queue."""
        self.record([(STARTED, job, None)])

    def ended(self, job: Job, status: str) -> None:
        """Record how this worker's run of `job` ended, `status` being its
        stream's terminal status: the execution ends, the job is finished,
        failed or canceled."""
        self.record([(ENDED, job, status)])

    def stopped(self, job: Job) -> None:
        """Forget a run that stopped without ending its stream (shutdown, a
        lost lease, Redis refusing writes): the lease path carries it on. Its
        records stay as they are (an execution in the started registry, or
        the intermediate queue's entry) until the lease's reclaim requeues
        the job, and the reconciler finds it there if that fails."""
        self.record([(STOPPED, job, None)])

    def record(self, records: Sequence[Record]) -> None:
        """Write `records` (STARTED, ENDED or STOPPED, in order; see the methods
        of those names) in one transaction; this process's view of its
        executions gains the started ones once it went through, and loses the
        ended and stopped ones at once (no longer beaten, an execution whose
        end did not get through goes stale for the reconciler). Raises redis errors."""
        with self._lock:
            known = dict(self._executions)
            for kind, job, _ in records:
                if kind != STARTED:
                    self._executions.pop(job.id, None)
        created: dict[int, Execution] = {}  # by the STARTED record's place in `records`
        if any(kind != STOPPED for kind, _, _ in records):
            with self.queue.connection.pipeline() as pipe:
                for i, (kind, job, status) in enumerate(records):
                    if kind == STARTED:
                        known[job.id] = created[i] = Execution.create(job, EXECUTION_TTL, pipe,
                                                                      worker_name=self.name)
                        job.set_status(JobStatus.STARTED, pipeline=pipe)
                        pipe.lrem(self.intermediate.key, 1, job.id)
                        # stamped if a sweep saw it unleased
                        pipe.delete(self.intermediate.get_first_seen_key(job.id))
                    elif kind == ENDED:
                        execution = known.pop(job.id, None)
                        if execution is not None:
                            execution.delete(job, pipe)
                        else:  # its start did not get through: this run's entry is still there
                            pipe.lrem(self.intermediate.key, 1, job.id)
                        self._record_end(job, status, pipe)
                    else:
                        known.pop(job.id, None)
                pipe.execute()
        with self._lock:
            for i, (kind, job, _) in enumerate(records):
                if kind == STARTED:
                    self._executions[job.id] = created[i]
                else:  # ended in this batch after it started
                    self._executions.pop(job.id, None)

    def left_queue(self, stream_id: str) -> None:
        """Take one entry of a job id out of the intermediate queue (its stream
        is in the hands of a lease, or ended). One: a worker may have just
        taken the same job again, and its entry must stay."""
        self.queue.connection.lrem(self.intermediate.key, 1, stream_id)

    def settle(self, stream_id: str, status: str) -> None:
        """Bring a job's records in line with its stream's terminal `status`:
        no execution left in the started registry, the matching status and registry."""
        job = self.queue.fetch_job(stream_id)
        if job is None:
            return
        with self.queue.connection.pipeline() as pipe:
            self.queue.started_job_registry.remove_executions(job, pipeline=pipe)
            if job.get_status(refresh=False) != _STATUS_OF.get(status, JobStatus.FAILED):
                self._record_end(job, status, pipe)
            pipe.execute()

    def requeue(self, stream_id: str, *, from_intermediate: bool = False) -> None:
        """Put a stream's job back at the front of the queue (enqueued anew if
        RQ lost it), its executions ended, in one transaction: if it fails,
        the job is still where the reconciler looks (`from_intermediate`: the
        intermediate queue's entry moves; else the started registry's)."""
        job = self.queue.fetch_job(stream_id)
        executions = job.get_executions() if job is not None else []
        with self.queue.connection.pipeline() as pipe:
            pipe.multi()  # RQ's enqueue may ask for it after the first command, which redis-py refuses
            if from_intermediate:
                pipe.lrem(self.intermediate.key, 1, stream_id)
            if job is None:
                enqueue_generation(self.queue, stream_id, self.ttl, pipeline=pipe)
            else:
                for execution in executions:
                    self.queue.started_job_registry.remove_execution(execution, pipeline=pipe)
                self.queue.failed_job_registry.remove(job, pipeline=pipe)
                self.queue.enqueue_job(job, pipeline=pipe, at_front=True)
            pipe.execute()

    def _record_end(self, job: Job, status: str, pipe: redis.client.Pipeline) -> None:
        rq_status = _STATUS_OF.get(status, JobStatus.FAILED)
        if rq_status is JobStatus.FINISHED:
            job.set_status(JobStatus.FINISHED, pipeline=pipe)
            self.queue.finished_job_registry.add(job, ttl=self.ttl, pipeline=pipe)
            self.worker.increment_successful_job_count(pipeline=pipe)
        elif rq_status is JobStatus.CANCELED:
            job.set_status(JobStatus.CANCELED, pipeline=pipe)
            self.queue.canceled_job_registry.add(job, ttl=self.ttl, pipeline=pipe)
        else:
            job.set_status(JobStatus.FAILED, pipeline=pipe)
            self.queue.failed_job_registry.add(job, ttl=self.ttl, exc_string=f"the stream ended {status}",
                                               pipeline=pipe)
            self.worker.increment_failed_job_count(pipeline=pipe)
        job.cleanup(ttl=self.ttl, pipeline=pipe)
