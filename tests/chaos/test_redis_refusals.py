"""A Redis that refuses writes (issue 19) or forgets its scripts (issue 18):
the worker process backs off and carries on, /readyz says why, and every
stream ends with exactly one terminal event."""

from __future__ import annotations

import concurrent.futures
import json
import time
from pathlib import Path

import pytest
import redis
import requests

from mock_upstream import expected_text
from spool.events import EventType
from spool.keys import Keys
from tests.chaos.conftest import record
from tests.chaos.harness import Outcome, run_client
from tests.chaos.redis_server import RedisServer
from tests.chaos.test_chaos import CHAOS_ENV, LEASE
from tests.stack import wait_until

pytestmark = pytest.mark.timeout(300)

CAP = 24 * 1024 * 1024
FILLER = 256 * 1024


@pytest.fixture
def capped_redis(tmp_path: Path):
    """A redis-server of this test's own that refuses writes at 24 MB."""
    server = RedisServer(tmp_path / "redis", appendonly=False,
                         args=("--maxmemory", str(CAP), "--maxmemory-policy", "noeviction"))
    server.directory.mkdir()
    server.start()
    yield server
    server.stop()


def terminal_events(client: redis.Redis, prefix: str, stream_id: str) -> list[str]:
    """The terminal event types stored in a stream, as written (not as read)."""
    entries = client.xrange(Keys(prefix).events(stream_id))
    return [fields[b"t"].decode() for _, fields in entries if EventType(fields[b"t"].decode()).is_terminal]


def fill(client: redis.Redis, n: int = 0, sizes: tuple[int, ...] = (FILLER, 16 * 1024, 1024, 64)) -> int:
    """Write filler keys (numbered from `n`) until Redis refuses even small
    writes; returns the next free number. (A refused write's own argument
    counts until refused, so big writes alone leave room for small ones.)"""
    for size in sizes:
        while True:
            try:
                client.set(f"filler:{n}", b"x" * size)
            except redis.exceptions.OutOfMemoryError:
                break
            n += 1
    return n


def assert_ended_once(client: redis.Redis, prefix: str, outcomes: list[Outcome], tokens: int) -> None:
    for o in outcomes:
        assert not o.hung and not o.gaps and not o.duplicated, (o.prompt, o.stream_id, o.events[-3:])
        assert terminal_events(client, prefix, o.stream_id) == [o.terminal["type"]], o.stream_id
        if o.terminal["type"] == "done":
            assert o.text == expected_text(o.prompt, tokens)
        else:  # answers cut by the refusal end through the lease path, attempts bounded
            assert o.terminal.get("code") in ("worker_lost", "internal_error"), o.terminal


def test_a_full_redis_is_waited_out_and_every_stream_ends_once(capped_redis, stack_factory):
    tokens = 60
    stack = stack_factory(redis=capped_redis.url, env=CHAOS_ENV,
                          mock_args=["--ttft-ms", "20", "--tokens-per-second", "20", "--tokens", str(tokens)])
    [worker] = stack.worker_procs
    client = redis.Redis.from_url(capped_redis.url)
    prompts = [f"full {i}" for i in range(12)]
    started = time.monotonic()
    with concurrent.futures.ThreadPoolExecutor(len(prompts) + 4) as pool:
        futures = [pool.submit(run_client, stack.gateway_urls, p, deadline=150) for p in prompts[:8]]
        wait_until(lambda: sum(r["tokens_sent"] >= 3 for r in stack.mock_stats()) >= 8, 30, "answers under way")
        fillers = fill(client)
        # New streams asked for while Redis is full: refused (503), retried by their clients.
        futures += [pool.submit(run_client, stack.gateway_urls, p, deadline=150) for p in prompts[8:]]
        # At the cap Redis frees a little now and then (a refused command's
        # buffers), letting one small write through: top it up until /readyz
        # sees it full, as it does for as long as writes are refused.
        readiness: list[requests.Response] = []

        def reported_full() -> bool:
            nonlocal fillers
            fillers = fill(client, fillers, (1024, 64))
            readiness.append(requests.get(stack.base_url + "/readyz", timeout=10))
            return readiness[-1].status_code == 503

        wait_until(reported_full, 10, "/readyz to report Redis full")
        ready = readiness[-1]
        assert ready.json()["error"]["code"] == "redis_full", ready.text
        assert "127.0.0.1" not in ready.text and str(capped_redis.port) not in ready.text
        metrics = dict(line.rsplit(" ", 1) for line in requests.get(stack.base_url + "/metrics", timeout=10).text
                       .splitlines() if line.startswith("spool_redis_"))
        assert float(metrics["spool_redis_maxmemory_bytes"]) == CAP
        assert float(metrics["spool_redis_memory_used_ratio"]) >= 0.99
        # Full for longer than a lease: running answers lose theirs, RQ's
        # heartbeats fail. Memory freed by refused commands is taken back.
        until = time.monotonic() + 3 * LEASE
        while time.monotonic() < until:
            fillers = fill(client, fillers, (1024, 64))
            time.sleep(0.05)
        assert worker.poll() is None, stack.logs()
        client.delete(*[f"filler:{n}" for n in range(fillers)])
        outcomes = [f.result() for f in futures]
    assert worker.poll() is None, stack.logs()
    record("Redis full (maxmemory, noeviction), then freed", 1, outcomes,
           sum(o.terminal is None or o.terminal["type"] != "done" for o in outcomes), time.monotonic() - started)
    assert_ended_once(client, stack.prefix, outcomes, tokens)
    # Nothing stranded between RQ's queue and a lease; the worker is ready again.
    queue_key = f"rq:queue:{stack.prefix}"
    wait_until(lambda: client.llen(f"{queue_key}:intermediate") == 0, 30, "an empty intermediate queue")
    wait_until(lambda: requests.get(stack.base_url + "/readyz", timeout=10).status_code == 200, 30, "ready again")
    after = run_client(stack.gateway_urls, "after the flood", deadline=60)
    assert after.terminal["type"] == "done" and after.text == expected_text("after the flood", tokens)


def test_redis_forgetting_its_scripts_mid_run_ends_every_stream_once(private_redis, stack_factory):
    tokens = 40
    stack = stack_factory(redis=private_redis.url, env=CHAOS_ENV,
                          mock_args=["--ttft-ms", "20", "--tokens-per-second", "40", "--tokens", str(tokens)])
    client = redis.Redis.from_url(private_redis.url)
    prompts = [f"noscript {i}" for i in range(16)]
    started = time.monotonic()
    with concurrent.futures.ThreadPoolExecutor(len(prompts)) as pool:
        futures = [pool.submit(run_client, stack.gateway_urls, p, deadline=90) for p in prompts[:8]]
        wait_until(lambda: sum(r["tokens_sent"] >= 3 for r in stack.mock_stats()) >= 8, 30, "answers under way")
        client.script_flush()  # every EVALSHA now answers NOSCRIPT, at the lease and mid-answer
        futures += [pool.submit(run_client, stack.gateway_urls, p, deadline=90) for p in prompts[8:]]
        outcomes = [f.result() for f in futures]
    record("Redis forgets its scripts (SCRIPT FLUSH) mid-run", 1, outcomes,
           sum(o.terminal is None or o.terminal["type"] != "done" for o in outcomes), time.monotonic() - started)
    for o in outcomes:
        assert terminal_events(client, stack.prefix, o.stream_id) == ["done"], json.dumps(o.events[-2:])
        assert o.text == expected_text(o.prompt, tokens) and not o.hung and not o.duplicated


def test_a_failover_read_only_redis_and_reset_connections_are_waited_out(private_redis, stack_factory):
    tokens = 60
    stack = stack_factory(redis=private_redis.url, env=CHAOS_ENV,
                          mock_args=["--ttft-ms", "20", "--tokens-per-second", "20", "--tokens", str(tokens)])
    [worker] = stack.worker_procs
    client = redis.Redis.from_url(private_redis.url)
    prompts = [f"readonly {i}" for i in range(8)]
    started = time.monotonic()
    with concurrent.futures.ThreadPoolExecutor(len(prompts)) as pool:
        futures = [pool.submit(run_client, stack.gateway_urls, p, deadline=150) for p in prompts]
        wait_until(lambda: sum(r["tokens_sent"] >= 3 for r in stack.mock_stats()) >= 8, 30, "answers under way")
        # As after a failover: this Redis is now a replica (of a master that is not there), so it
        # answers READONLY to every write, and every client's connection is cut.
        client.replicaof("127.0.0.1", "1")
        client.client_kill_filter(_type="normal", skipme=True)
        ready = requests.get(stack.base_url + "/readyz", timeout=10)
        assert ready.status_code == 503 and ready.json()["error"]["code"] == "redis_readonly", ready.text
        time.sleep(3 * LEASE)  # longer than a lease: running answers lose theirs
        assert worker.poll() is None, stack.logs()
        client.replicaof("NO", "ONE")
        outcomes = [f.result() for f in futures]
    assert worker.poll() is None, stack.logs()
    record("Redis read-only (failover) and connections reset, then writable", 1, outcomes,
           sum(o.terminal is None or o.terminal["type"] != "done" for o in outcomes), time.monotonic() - started)
    assert_ended_once(client, stack.prefix, outcomes, tokens)
    wait_until(lambda: client.llen(f"rq:queue:{stack.prefix}:intermediate") == 0, 30, "an empty intermediate queue")
