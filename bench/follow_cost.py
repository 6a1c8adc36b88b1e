"""The gateway's CPU per delivered event: N followers (spool.tail.follow,
NDJSON) under gevent on one TailHub (redis-py's checks as the gateway sets
them, spool/redis_polls.py), fed by a writer process that appends
one delta to every stream each 20 ms, as a worker's Flusher would. Reports
the followers' process CPU (process_time) per delivered event, best of 3
rounds of ROUNDS ticks. Needs a Redis (REDIS_URL, default 127.0.0.1:6379;
its keys go under a fresh prefix, removed after).

    .venv/bin/python -m bench.follow_cost [N]

Compares one tree's follower path with another's on a shared machine. Not
part of `make bench`.
"""

from gevent import monkey

monkey.patch_all()

import json  # noqa: E402
import os  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
import uuid  # noqa: E402

import gevent  # noqa: E402
import redis  # noqa: E402

from spool.events import EventType  # noqa: E402
from spool.keys import Keys, new_stream_id  # noqa: E402
from spool.redis_client import pubsub_factory  # noqa: E402
from spool.redis_polls import check_connections_without_yielding  # noqa: E402
from spool.streams import AppendRequest, StreamStore  # noqa: E402
from spool.tail import TailHub, follow  # noqa: E402
from spool.wire import NdjsonEncoder  # noqa: E402

ROUNDS = 100
TICK = 0.02
URL = os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0")


def write(prefix: str, writer: str, streams: list[str], first_seq: int) -> None:
    """The writer process: ROUNDS appends of one delta to every stream, TICK apart."""
    store = StreamStore(redis.Redis.from_url(URL), Keys(prefix), 600)
    for seq in range(first_seq, first_seq + ROUNDS):
        store.append_many([AppendRequest(s, writer, seq, [(EventType.DELTA, {"text": " word"})]) for s in streams])
        time.sleep(TICK)


def main() -> None:
    if sys.argv[1:2] == ["--write"]:
        write(**json.loads(sys.stdin.read()))
        return
    followers = int(sys.argv[1]) if len(sys.argv) > 1 else 200
    check_connections_without_yielding()  # as the gateway does
    client = redis.Redis.from_url(URL)
    prefix = f"benchfollow{uuid.uuid4().hex[:6]}"
    store = StreamStore(client, Keys(prefix), 600)
    hub = TailHub(client, pubsub_factory(URL, client))
    writer = uuid.uuid4().hex
    streams = []
    for _ in range(followers):
        stream_id = new_stream_id()
        store.create(stream_id, {"model": "m", "messages": []})
        assert store.leases.acquire(stream_id, 600, writer).claimed  # seq 1: start
        streams.append(stream_id)
    delivered = [0]

    def read(stream_id: str) -> None:
        for _ in follow(store, hub, stream_id, 1, NdjsonEncoder(), 15.0):
            delivered[0] += 1

    readers = [gevent.spawn(read, stream_id) for stream_id in streams]
    try:
        gevent.sleep(0.5)  # every follower subscribed
        best = float("inf")
        for round_ in range(3):
            counted, started = delivered[0], time.process_time()
            job = {"prefix": prefix, "writer": writer, "streams": streams, "first_seq": 2 + round_ * ROUNDS}
            subprocess.run([sys.executable, "-m", "bench.follow_cost", "--write"], input=json.dumps(job),
                           text=True, check=True)
            gevent.sleep(0.2)  # the last tick delivered
            spent = time.process_time() - started
            best = min(best, spent / (delivered[0] - counted) * 1e6)
        print(f"follow: {best:.1f} us CPU per delivered event ({followers} followers)")
    finally:
        gevent.killall(readers)
        hub.close_all()
        for key in client.scan_iter(f"{prefix}:*"):
            client.delete(key)


if __name__ == "__main__":
    main()
