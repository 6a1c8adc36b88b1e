"""Many clients resuming one long stream at once: each replay is read in
bounded pages, every client gets exactly its events, and the gateway stays
responsive throughout."""

from __future__ import annotations

import random
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest
import redis
import requests

from spool.events import EventType
from spool.keys import Keys, new_stream_id
from spool.streams import PAGE, StreamStore
from tests.client import get_events, read

pytestmark = pytest.mark.integration

EVENTS = 2 * PAGE + 500  # three replay pages
CLIENTS = 48


def long_stream(stack) -> str:
    client = redis.Redis.from_url(stack.redis_url)
    store = StreamStore(client, Keys(stack.prefix), 3600)
    sid = new_stream_id()
    store.create(sid, {"model": "mock", "messages": []})
    store.leases.acquire(sid, 3600, "w")  # seq 1: start
    seq = 2
    while seq < EVENTS:
        batch = [(EventType.DELTA, {"text": f"{n} "}) for n in range(seq, min(seq + 500, EVENTS))]
        store.append(sid, "w", seq, batch)
        seq += len(batch)
    store.append(sid, "w", seq, [(EventType.DONE, {"finish_reason": "stop", "usage": None})])
    client.close()
    return sid


def test_concurrent_resumes_on_one_gateway(stack):
    sid = long_stream(stack)
    rng = random.Random(7)
    starts = [0, EVENTS - 1] + [rng.randrange(EVENTS) for _ in range(CLIENTS - 2)]
    barrier = threading.Barrier(CLIENTS + 1)

    def resume(after: int):
        barrier.wait(timeout=60)
        return after, read(get_events(stack.base_url, sid, after=after, sse=after % 2 == 1), sse=after % 2 == 1)

    health_latencies = []
    with ThreadPoolExecutor(CLIENTS) as pool:
        futures = [pool.submit(resume, after) for after in starts]
        barrier.wait(timeout=60)
        while not all(f.done() for f in futures):
            began = time.monotonic()
            assert requests.get(f"{stack.base_url}/healthz", timeout=10).ok
            health_latencies.append(time.monotonic() - began)
        results = [f.result(timeout=120) for f in futures]

    for after, received in results:
        assert received.seqs == list(range(after + 1, EVENTS + 1)), after
        assert received.terminal["type"] == "done"
    assert stack.gateway_procs[0].poll() is None
    # The gateway kept answering while it replayed ~CLIENTS * EVENTS / 2 events.
    print(f"resume storm: {CLIENTS} clients x ~{EVENTS // 2} events; /healthz max "
          f"{max(health_latencies) * 1000:.0f} ms over {len(health_latencies)} probes")
    assert health_latencies and max(health_latencies) < 5, health_latencies


def test_replay_reads_in_bounded_pages(stack):
    sid = long_stream(stack)
    client = redis.Redis.from_url(stack.redis_url)
    counts = []
    original = client.xrange

    def spy(*args, **kwargs):
        counts.append(kwargs.get("count"))
        return original(*args, **kwargs)

    client.xrange = spy
    events = list(StreamStore(client, Keys(stack.prefix), 3600).read(sid, 0))
    client.close()
    assert len(events) == EVENTS
    assert counts and all(c == PAGE for c in counts) and len(counts) == EVENTS // PAGE + 1
