"""The RQ side of a stream: its job is named by the stream id.

Jobs are stored as JSON (RQ's JSONSerializer), never pickle: a worker that
reads a job runs no code written by whoever could write to Redis. Every
Queue spool builds, the gateway's and the worker's, comes from `spool_queue`.
"""

from __future__ import annotations

import redis
from redis.client import Pipeline
from rq import Queue
from rq.serializers import JSONSerializer

# The job function, by name: the gateway enqueues it without importing the worker.
GENERATE_JOB = "worker.jobs.generate"
SERIALIZER = JSONSerializer


def spool_queue(name: str, connection: redis.Redis) -> Queue:
    """The RQ queue `name`, with JSON jobs."""
    return Queue(name, connection=connection, serializer=SERIALIZER)


def enqueue_generation(queue: Queue, stream_id: str, ttl: int, pipeline: Pipeline | None = None) -> None:
    """Put the stream's generation job on `queue`, visible to `rq info`. With
    `pipeline`, the commands join it and the caller executes it.

    RQ's own job timeout is off: the worker enforces its generation limit
    itself, and cooperatively (RQ's timer would kill a whole process)."""
    queue.enqueue_call(
        func=GENERATE_JOB,
        args=(stream_id,),
        job_id=stream_id,
        timeout=-1,
        result_ttl=ttl,
        failure_ttl=ttl,
        description=f"generate stream {stream_id}",
        pipeline=pipeline,
    )
