"""Failovers under fire: a Redis Cluster master and a Sentinel-managed queue
master SIGKILLed mid-answer while 20 clients stream and resume."""

from __future__ import annotations

import concurrent.futures
import json
import time

import pytest
import redis

from spool.keys import Keys
from spool.redis_client import connect
from spool.streams import StreamStore
from tests.chaos.conftest import record
from tests.chaos.test_chaos import LEASE, assert_clean, chaos_stack, clients_through, lost  # noqa: F401
from tests.chaos.harness import run_client
from bench.redis_topologies import RedisCluster3, SentinelSetup
from tests.stack import wait_until

pytestmark = pytest.mark.timeout(300)

TOKENS = 60


@pytest.fixture
def private_cluster():
    cluster = RedisCluster3().start()
    yield cluster
    cluster.stop()


@pytest.fixture
def sentinel_setup():
    setup = SentinelSetup().start()
    yield setup
    setup.stop()


def assert_no_seq_rewritten(outcomes, streams_url: str, prefix: str) -> None:
    """Every event a client saw is the event stored under its seq now."""
    store = StreamStore(connect(streams_url, max_connections=2), Keys(prefix), 3600)
    for outcome in outcomes:
        stored = {e.seq: (e.type.decode(), json.loads(e.data)) for e in store.read(outcome.stream_id, 0)}
        for event in outcome.events:
            fields = {k: v for k, v in event.items() if k not in ("seq", "type")}
            assert stored[event["seq"]] == (event["type"], fields), (outcome.stream_id, event)


def test_sigkill_of_a_cluster_master_mid_answer(private_cluster, chaos_stack):
    stack = chaos_stack(gateways=2, env={"SPOOL_STREAMS_REDIS_URL": private_cluster.url},
                        mock_args=["--ttft-ms", "20", "--tokens-per-second", "20", "--tokens", str(TOKENS)])
    prompts = [f"cluster failover {i}" for i in range(20)]
    victim = private_cluster.masters()[0]
    killed_at: list[float] = []

    def kill() -> None:
        # Cut the victim's replication first (its replica may not resync:
        # PSYNC and SYNC are denied): the replica that takes over lacks the
        # last second of writes, which clients have read.
        node = redis.Redis(port=victim)
        node.execute_command("ACL", "SETUSER", "default", "-psync", "-sync")
        node.execute_command("CLIENT", "KILL", "TYPE", "replica")
        node.close()
        time.sleep(1)  # ~50 Flusher ticks per stream land on the victim alone
        killed_at.append(time.monotonic())
        private_cluster.kill(victim)

    outcomes = clients_through(stack, stack.gateway_urls, prompts, kill, deadline=90)
    ended = time.monotonic()
    record("SIGKILL a cluster master mid-answer (its replica takes over)", 1, outcomes, lost(outcomes, TOKENS),
           ended - killed_at[0])
    assert_clean(outcomes, TOKENS)
    # A resume from a seq the promoted replica lacks is followed, not refused (gateway/cursor.py).
    assert [o.refusals for o in outcomes if o.refusals] == []
    private_cluster.wait_ok()
    assert victim not in private_cluster.masters() and len(private_cluster.masters()) == 3
    assert_no_seq_rewritten(outcomes, private_cluster.url, stack.prefix)
    # The workers restored what the promoted replica had lost.
    assert "lost in a failover" in stack.logs() or any(
        "lost in a failover" in p.log_path.read_text() for p in stack.processes)
    # Failover (node timeout 2 s + election), then the rest of a 3 s answer.
    assert ended - killed_at[0] < LEASE + TOKENS / 20 + 10


def test_sigkill_of_the_sentinel_queue_master(sentinel_setup, redis_cluster, chaos_stack):
    # The queue under Sentinel, the streams on a cluster. A worker running 4
    # answers at a time: when the queue's master dies, 16 are still queued.
    stack = chaos_stack(redis=sentinel_setup.url, gateways=2, worker_concurrency=4,
                        env={"SPOOL_STREAMS_REDIS_URL": redis_cluster.url},
                        mock_args=["--ttft-ms", "20", "--tokens-per-second", "40", "--tokens", str(TOKENS)])
    prompts = [f"sentinel failover {i}" for i in range(20)]
    queue = connect(sentinel_setup.url, max_connections=2)
    started = time.monotonic()
    with concurrent.futures.ThreadPoolExecutor(len(prompts)) as pool:
        futures = [pool.submit(run_client, stack.gateway_urls, p, deadline=120) for p in prompts]
        wait_until(lambda: sum(1 for r in stack.mock_stats() if r["tokens_sent"] >= 3) >= 4, 30,
                   "the first answers under way")
        queued = queue.llen(f"rq:queue:{stack.prefix}")
        sentinel_setup.kill(sentinel_setup.master)
        outcomes = [f.result() for f in futures]
    record("SIGKILL the Sentinel-managed queue master", 1, outcomes, lost(outcomes, TOKENS),
           time.monotonic() - started)
    assert queued >= 10  # the failover struck with answers waiting in the queue
    assert_clean(outcomes, TOKENS)
    assert connect(sentinel_setup.url).info("server")["tcp_port"] == sentinel_setup.replica
