"""A job's start under injected faults, on the real Redis (issue 18): a
connection broken or a script failing at the lease, a worker killed after
taking the job, after its lease, or after RQ's record of it. Every stream
ends with exactly one terminal event, and RQ's lists are left clean.

The worker's parts run in this process (the runner in burst mode on a
thread); a "killed" worker is one whose steps the test takes by hand and
then abandons.
"""

from __future__ import annotations

import json
import threading

import pytest
import redis
from rq import Queue

from spool.events import EventType
from spool.keys import Keys, new_stream_id
from spool.queueing import SERIALIZER, enqueue_generation, spool_queue
from spool.redis_client import connect
from spool.settings import Settings
from spool.streams import StreamStore
from worker import job_run
from worker.generation import GenerationContext, Generations, run_generation
from worker.leases import LeaseKeeper
from worker.publisher import Flusher
from worker.reconcile import Reconciler
from worker.rq_books import RQBooks
from worker.runner import JobRunner
from worker.upstream import Piece

pytestmark = pytest.mark.timeout(60)

REQUEST = {"messages": [{"role": "user", "content": "hi"}], "model": "m", "temperature": None, "max_tokens": None}
LEASE = 0.5


class Call:
    """An upstream answer: "Hello", then stop."""

    def __iter__(self):
        yield Piece("Hel")
        yield Piece("lo")
        yield Piece(finish_reason="stop")

    def close(self):
        pass


class Upstream:
    def open(self, request):
        return Call()


class FaultyStore(StreamStore):
    """The real store, whose lease fails the first `failures` times with `error`."""

    failures = 0
    error: Exception = redis.ConnectionError("Connection closed by server.")

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        acquire = self.leases.acquire

        def faulty_acquire(*args, **kwargs):
            if self.failures:
                self.failures -= 1
                raise self.error
            return acquire(*args, **kwargs)

        self.leases.acquire = faulty_acquire


class Worker:
    """The worker's parts on the real Redis, under the test's prefix."""

    def __init__(self, url: str, prefix: str) -> None:
        self.client = connect(url)
        self.store = FaultyStore(self.client, Keys(prefix), 3600)
        self.queue = spool_queue(prefix, self.client)
        self.books = RQBooks(self.queue, f"w-{prefix}", 3600)
        settings = Settings(lease_seconds=LEASE, coalesce_ms=5, max_attempts=3)
        self.flusher = Flusher(self.store, 0.005)
        self.flusher.start()
        self.leases = LeaseKeeper(self.store, self.books, LEASE, settings.max_attempts)
        self.ctx = GenerationContext(settings, self.store, Upstream(), Generations(), self.flusher, self.leases)
        self.reconciler = Reconciler(self.store, self.books, interval=LEASE, stranded_after=0,
                                     max_attempts=settings.max_attempts)

    def create(self) -> str:
        stream_id = new_stream_id()
        self.store.create(stream_id, REQUEST)
        enqueue_generation(self.queue, stream_id, 3600)
        return stream_id

    def run_burst(self) -> None:
        """Run every queued job to its end, as `spool worker --burst` would."""
        runner = JobRunner(self.queue, self.books, run=lambda sid, on: run_generation(self.ctx, sid, on),
                           concurrency=4)
        thread = threading.Thread(target=runner.work, kwargs={"burst": True})
        thread.start()
        thread.join(30)
        assert not thread.is_alive()

    def reconcile(self) -> None:
        """Two passes: the first stamps each stranded job as seen, the second acts."""
        self.reconciler.sweep()
        self.reconciler.sweep()

    def events(self, stream_id: str) -> list[tuple[str, dict]]:
        return [(e.type.decode(), json.loads(e.data)) for e in self.store.read(stream_id, 0)]

    def rq_lists(self) -> dict[str, list[str]]:
        return {
            "queued": self.queue.get_job_ids(),
            "intermediate": self.books.intermediate.get_job_ids(),
            "started": [j for j, _ in self.queue.started_job_registry.get_job_and_execution_ids(cleanup=False)],
        }


@pytest.fixture
def worker(redis_url, prefix, monkeypatch):
    monkeypatch.setattr(job_run, "START_ATTEMPTS", 2)  # 0.5 s of retries, not 3.5 s
    w = Worker(redis_url, prefix)
    yield w
    w.flusher.stop()
    keys = list(w.client.scan_iter(match=f"{prefix}:*")) + list(w.client.scan_iter(match=f"rq:*{prefix}*"))
    if keys:
        w.client.delete(*keys)


def terminals(events: list[tuple[str, dict]]) -> list[str]:
    return [t for t, _ in events if EventType(t).is_terminal]


def assert_done(worker: Worker, stream_id: str) -> None:
    events = worker.events(stream_id)
    assert terminals(events) == ["done"], events
    assert "".join(d["text"] for t, d in events if t == "delta").endswith("Hello")
    assert worker.rq_lists() == {"queued": [], "intermediate": [], "started": []}
    assert stream_id in worker.queue.finished_job_registry.get_job_ids()


def test_a_connection_broken_at_the_lease_is_retried(worker):
    worker.store.failures = 1
    stream_id = worker.create()
    worker.run_burst()
    assert_done(worker, stream_id)


def test_a_lease_that_keeps_failing_is_requeued_then_done_once_redis_is_back(worker):
    worker.store.failures = 2  # every try of the first run
    stream_id = worker.create()
    worker.run_burst()
    assert worker.events(stream_id) == []  # untouched: still queued
    assert worker.rq_lists()["intermediate"] == [stream_id]
    worker.reconcile()
    assert worker.rq_lists()["queued"] == [stream_id]
    worker.run_burst()
    assert_done(worker, stream_id)


def test_a_script_that_always_fails_ends_the_stream_with_one_error(worker):
    worker.store.failures = 1000
    worker.store.error = redis.ResponseError("ERR Error running script (call to f_0): boom")
    stream_id = worker.create()
    for _ in range(3):  # max_attempts runs, each put back by the reconciler
        worker.run_burst()
        worker.reconcile()
    events = worker.events(stream_id)
    assert terminals(events) == ["error"] and events[-1][1]["code"] == "worker_lost"
    assert worker.store.meta(stream_id).status == "error"
    assert worker.rq_lists() == {"queued": [], "intermediate": [], "started": []}
    assert stream_id in worker.queue.failed_job_registry.get_job_ids()


def test_a_worker_killed_after_taking_a_job_leaves_it_to_the_reconciler(worker):
    stream_id = worker.create()
    # The dead worker's last step: RQ moved the job to the intermediate queue.
    Queue.dequeue_any([worker.queue], None, connection=worker.client, serializer=SERIALIZER)
    assert worker.rq_lists()["intermediate"] == [stream_id]
    worker.reconcile()
    worker.run_burst()
    assert_done(worker, stream_id)


@pytest.mark.parametrize("rq_recorded", [False, True], ids=["after-its-lease", "after-rqs-record"])
def test_a_worker_killed_after_the_lease_is_replaced_through_the_lease(worker, rq_recorded):
    stream_id = worker.create()
    job, _ = Queue.dequeue_any([worker.queue], None, connection=worker.client, serializer=SERIALIZER)
    worker.store.leases.acquire(stream_id, LEASE, "dead-writer")  # writes `start` for the dead writer
    if rq_recorded:
        worker.books.started(job)
    # The lease expires; a live worker's keeper reclaims the stream and requeues its job.
    worker.leases.start()
    try:
        from tests.stack import wait_until

        wait_until(lambda: worker.queue.get_job_ids() == [stream_id], 10, "the job requeued by the lease reaper")
    finally:
        worker.leases.stop()
    worker.reconcile()
    worker.run_burst()
    events = worker.events(stream_id)
    assert [t for t, _ in events][:2] == ["start", "reset"]
    assert_done(worker, stream_id)


def test_a_job_whose_stream_ended_leaves_the_intermediate_queue(worker):
    stream_id = worker.create()
    Queue.dequeue_any([worker.queue], None, connection=worker.client, serializer=SERIALIZER)
    worker.store.cancel(stream_id)  # ended while its worker was gone
    worker.reconcile()
    assert worker.rq_lists() == {"queued": [], "intermediate": [], "started": []}
    assert stream_id in worker.queue.canceled_job_registry.get_job_ids()


def test_a_reclaimed_job_that_could_not_be_put_back_is_requeued_from_the_started_registry(worker):
    stream_id = worker.create()
    job, _ = Queue.dequeue_any([worker.queue], None, connection=worker.client, serializer=SERIALIZER)
    worker.store.leases.acquire(stream_id, LEASE, "dead-writer")
    worker.books.started(job)
    # The reaper's reclaim got through, putting the job back on RQ's queue did not (Redis refused it).
    assert worker.store.leases.reclaim(stream_id, "worker_lost", 3, force=True)[0] == "requeue"
    registry = worker.queue.started_job_registry
    [entry] = worker.client.zrange(registry.key, 0, -1)
    worker.client.zadd(registry.key, {entry: 1})  # its heartbeats stopped long ago
    worker.reconcile()
    assert worker.queue.get_job_ids() == [stream_id]
    worker.run_burst()
    assert_done(worker, stream_id)
