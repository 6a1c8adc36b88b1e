"""Streams on a real 3-master Redis Cluster, the queue on the plain Redis:
real gateways and a worker (tests/stack.py); and what the worker's
reconciler does with a stream whose lease a failover lost with its worker."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import pytest
import redis
import requests
from rq import Queue

from mock_upstream import expected_text
from spool.events import EventType
from spool.queueing import SERIALIZER
from spool.redis_client import connect
from spool.streams import FAILOVER_SEQ_MARGIN
from tests.client import chat, get_events, post_stream, read
from tests.integration.test_worker_start import LEASE, assert_done, worker  # noqa: F401  (a fixture)

pytestmark = pytest.mark.integration

TOKENS = 40


@pytest.fixture(scope="module")
def cluster_stack(redis_cluster, redis_url, tmp_path_factory):
    from tests.stack import start_stack

    stack = start_stack(
        redis_url,
        gateways=2,
        # Limits on: their scripts and pipelines run on the cluster too (never refusing here).
        env={"SPOOL_STREAMS_REDIS_URL": redis_cluster.url, "SPOOL_RATE_LIMIT_PER_MINUTE": "100000",
             "SPOOL_MAX_CONCURRENT_STREAMS": "1000"},
        mock_args=["--ttft-ms", "20", "--tokens-per-second", "200", "--tokens", str(TOKENS)],
        log_dir=tmp_path_factory.mktemp("cluster-stack"),
    )
    yield stack
    stack.stop()


def test_concurrent_streams_are_exact_and_spread_over_every_master(cluster_stack, redis_cluster, redis_url):
    prompts = [f"cluster {i}" for i in range(24)]
    with ThreadPoolExecutor(len(prompts)) as pool:
        received = list(pool.map(
            lambda i: read(post_stream(cluster_stack.gateway_urls[i % 2], chat(prompts[i]))), range(len(prompts))))
    for prompt, answer in zip(prompts, received):
        assert answer.text == expected_text(prompt, TOKENS), answer.events
        assert answer.terminal["type"] == "done"
        assert answer.seqs == list(range(1, len(answer.seqs) + 1))
    # Every master holds some of the streams; the queue's Redis holds none.
    holders = set()
    for port in redis_cluster.masters():
        node = redis.Redis(port=port)
        try:
            if any(node.scan_iter(match=f"{cluster_stack.prefix}:{{*}}:events", count=1000)):
                holders.add(port)
        finally:
            node.close()
    assert holders == set(redis_cluster.masters())
    queue_db = redis.Redis.from_url(redis_url)
    try:
        assert not queue_db.exists(f"{cluster_stack.prefix}:{{{received[0].stream_id}}}:events")
        assert queue_db.exists(f"rq:job:{received[0].stream_id}")
    finally:
        queue_db.close()


def test_an_idempotent_retry_on_the_other_gateway_gets_the_same_stream(cluster_stack):
    headers = {"Idempotency-Key": "cluster-retry"}
    first = read(post_stream(cluster_stack.gateway_urls[0], chat("idempotent on cluster"), headers=headers))
    again = read(post_stream(cluster_stack.gateway_urls[1], chat("idempotent on cluster"), headers=headers))
    assert again.stream_id == first.stream_id and again.text == first.text


def test_resume_on_the_other_gateway_is_exact(cluster_stack):
    first = read(post_stream(cluster_stack.gateway_urls[0], chat("resume on cluster")), stop_after=5)
    rest = read(get_events(cluster_stack.gateway_urls[1], first.stream_id, after=first.seqs[-1]))
    assert first.seqs + rest.seqs == list(range(1, rest.seqs[-1] + 1))
    assert first.text + rest.text == expected_text("resume on cluster", TOKENS)
    assert rest.terminal["type"] == "done"


def test_cancel_from_either_gateway_reaches_the_worker(redis_cluster, redis_url, stack_factory):
    stack = stack_factory(gateways=2, env={"SPOOL_STREAMS_REDIS_URL": redis_cluster.url},
                          mock_args=["--ttft-ms", "20", "--tokens-per-second", "20", "--tokens", "400"])
    for gateway in stack.gateway_urls:
        first = read(post_stream(gateway, chat(f"cancel via {gateway}")), stop_after=3)
        other = stack.gateway_urls[1 - stack.gateway_urls.index(gateway)]
        cancelled = requests.post(f"{other}/v1/streams/{first.stream_id}/cancel", timeout=10)
        assert cancelled.status_code == 200, cancelled.text
        assert cancelled.json() == {"id": first.stream_id, "status": "cancelled"}
        rest = read(get_events(gateway, first.stream_id, after=first.seqs[-1]))
        assert rest.terminal["type"] == "cancelled"
    # The worker's lease named its cancel channel: the cancel went to it alone.
    streams = connect(redis_cluster.url, max_connections=2)
    try:
        meta = streams.hgetall(f"{stack.prefix}:{{{first.stream_id}}}:meta")
        assert meta[b"control"].startswith(f"{stack.prefix}:control:".encode())
    finally:
        streams.close()


@pytest.mark.parametrize("rq_recorded", [False, True], ids=["before-rqs-record", "after-rqs-record"])
def test_a_lease_lost_with_its_master_and_worker_leaves_no_stream_queued(worker, rq_recorded):
    # The streams' master dies in a stream's first milliseconds, before its
    # lease (and `start`) reached the replica, and the worker running it dies
    # too. The queue's Redis (another server) keeps RQ's records: the job in
    # the intermediate queue, or, once RQ recorded it, in the started registry.
    stream_id = worker.create()
    meta_key = worker.store.keys.meta(stream_id)
    as_created = worker.client.hgetall(meta_key)
    job, _ = Queue.dequeue_any([worker.queue], None, connection=worker.client, serializer=SERIALIZER)
    assert worker.store.leases.acquire(stream_id, LEASE, "dead-writer").claimed
    worker.store.append(stream_id, "dead-writer", 2, [(EventType.DELTA, {"text": "Lost text"})])
    read_by_clients = list(worker.store.read(stream_id, 0))
    assert [e.type for e in read_by_clients] == [b"start", b"delta"]
    if rq_recorded:
        worker.books.started(job)
        registry = worker.queue.started_job_registry
        [entry] = worker.client.zrange(registry.key, 0, -1)
        worker.client.zadd(registry.key, {entry: 1})  # the dead worker's heartbeats stopped long ago
    # The promoted replica has the stream as the gateway created it.
    worker.client.delete(meta_key, worker.store.keys.events(stream_id))
    worker.client.hset(meta_key, mapping=as_created)
    assert worker.store.status(stream_id).value == "queued"
    worker.reconcile()
    assert worker.queue.get_job_ids() == [stream_id]  # put back, not left queued
    worker.run_burst()
    assert_done(worker, stream_id)
    # No seq holds other content than the client read: seq 1 is the `start`
    # its gateway stored, and the rerun's `reset` lands past the lost delta.
    stored = {e.seq: e for e in worker.store.read(stream_id, 0)}
    assert [stored.get(e.seq, e) for e in read_by_clients] == read_by_clients
    assert stored[1] == read_by_clients[0] and 2 not in stored
    assert stored[2 + FAILOVER_SEQ_MARGIN].type == b"reset"
    assert worker.store.meta(stream_id).history_lost
