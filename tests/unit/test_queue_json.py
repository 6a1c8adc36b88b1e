"""Jobs on the queue are JSON, never pickle (issue 20): what the gateway
writes, and what the worker is willing to read."""

from __future__ import annotations

import json
import pickle
import zlib

import fakeredis
import pytest
from rq import Queue
from rq.job import Job

from spool.queueing import GENERATE_JOB, SERIALIZER, spool_queue


@pytest.fixture
def redis_client():
    return fakeredis.FakeRedis()


def test_a_job_written_by_the_gateway_is_json(make_app, redis_client):
    app = make_app(redis_client=redis_client)
    response = app.test_client().post("/v1/streams", json={"messages": [{"role": "user", "content": "hi"}]},
                                      headers={"Accept": "application/json"})
    assert response.status_code == 202, response.get_data(as_text=True)
    stream_id = response.get_json()["id"]
    stored = redis_client.hget(f"rq:job:{stream_id}", "data")
    # RQ compresses the serialized call; inside is JSON, readable by anyone, runnable by no one.
    assert json.loads(zlib.decompress(stored)) == [GENERATE_JOB, None, [stream_id], {}]
    assert redis_client.hget(f"rq:job:{stream_id}", "serializer") in (None, b"rq.serializers.JSONSerializer")


def test_the_worker_does_not_unpickle_a_job(redis_client, prefix):
    # A job written with pickle (by anyone with write access to Redis) fails to load instead of running.
    pickled = Queue(prefix, connection=redis_client)
    job = pickled.enqueue_call(func=GENERATE_JOB, args=("x",), job_id="pickled")
    assert redis_client.exists(f"rq:job:{job.id}")
    with pytest.raises(Exception) as raised:
        Job.fetch("pickled", connection=redis_client, serializer=SERIALIZER).args
    assert not isinstance(raised.value, pickle.UnpicklingError)
    assert spool_queue(prefix, redis_client).serializer is SERIALIZER
