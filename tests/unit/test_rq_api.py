"""The parts of RQ the worker relies on (worker/runner.py, worker/rq_books.py,
worker/reconcile.py), pinned: all public, but an upgrade that changes one of
them must fail here rather than in production."""

from __future__ import annotations

import inspect

import redis
from rq import Queue, Worker
from rq.executions import Execution
from rq.intermediate_queue import IntermediateQueue
from rq.job import Job
from rq.registry import FailedJobRegistry, StartedJobRegistry

from spool.redis_health import RedisMemory, is_transient


def params(func) -> list[str]:
    return list(inspect.signature(func).parameters)


def test_the_rq_calls_the_worker_makes_keep_their_signatures():
    assert params(Queue.dequeue_any) == ["queues", "timeout", "connection", "job_class", "serializer",
                                         "death_penalty_class"]
    assert params(Queue.enqueue_job) == ["self", "job", "pipeline", "at_front", "unique"]
    assert params(Execution.create) == ["job", "ttl", "pipeline", "worker_name"]
    assert params(Execution.heartbeat) == ["self", "started_job_registry", "ttl", "pipeline"]
    assert params(Execution.delete) == ["self", "job", "pipeline"]
    assert params(StartedJobRegistry.remove_executions) == ["self", "job", "pipeline"]
    assert params(StartedJobRegistry.get_job_and_execution_ids)[:5] == ["self", "start", "end", "desc", "cleanup"]
    assert params(FailedJobRegistry.add) == ["self", "job", "ttl", "exc_string", "pipeline"]
    assert params(IntermediateQueue.__init__) == ["self", "queue_key", "connection"]
    for name in ("get_job_ids", "set_first_seen", "get_first_seen", "get_first_seen_key"):
        assert callable(getattr(IntermediateQueue, name))
    assert "prepare_for_work" in params(Worker.__init__)
    for name in ("register_birth", "register_death", "heartbeat", "set_state", "increment_successful_job_count",
                 "increment_failed_job_count"):
        assert callable(getattr(Worker, name))
    assert params(Job.set_status) == ["self", "status", "pipeline"]
    assert params(Job.cleanup) == ["self", "ttl", "pipeline", "remove_from_queue"]


def test_the_intermediate_queue_is_where_rq_documents_it():
    # The reconciler and the docs name `rq:queue:<name>:intermediate`.
    assert IntermediateQueue("rq:queue:spool", None).key == "rq:queue:spool:intermediate"


def test_write_refusals_are_transient_and_other_errors_are_not():
    assert is_transient(redis.exceptions.OutOfMemoryError("OOM command not allowed when used memory > 'maxmemory'."))
    assert is_transient(redis.exceptions.ReadOnlyError("You can't write against a read only replica."))
    assert is_transient(redis.ResponseError("Error running script (call to f_1): @user_script:3: "
                                            "OOM command not allowed when used memory > 'maxmemory'."))
    assert is_transient(redis.ConnectionError("Connection reset by peer"))
    assert not is_transient(redis.ResponseError("ERR Error running script: attempt to compare nil with number"))
    assert not is_transient(ValueError("x"))


def test_redis_is_full_at_its_cap_only_when_it_refuses_writes_there():
    assert RedisMemory(used=5_000_001, maxmemory=5_000_000, policy="noeviction").full
    assert not RedisMemory(used=4_000_000, maxmemory=5_000_000, policy="noeviction").full
    assert not RedisMemory(used=5_000_001, maxmemory=5_000_000, policy="allkeys-lru").full
    assert not RedisMemory(used=5_000_001, maxmemory=0, policy="noeviction").full
