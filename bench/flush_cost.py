"""The Flusher's CPU per write: N publishers with one delta each, flushed in
one pipelined round trip, 60 flushes, best of 5 (process_time). Needs a
Redis (REDIS_URL, default 127.0.0.1:6379; its keys go under a fresh prefix,
removed after).

    .venv/bin/python -m bench.flush_cost [N]

Compares a change's cost per write with another tree's on a shared machine.
Not part of `make bench`.
"""

from gevent import monkey

monkey.patch_all()

import os  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
import uuid  # noqa: E402

import redis  # noqa: E402

from spool.keys import Keys, new_stream_id  # noqa: E402
from spool.streams import StreamStore  # noqa: E402
from worker.publisher import Flusher, Publisher  # noqa: E402

FLUSHES = 60


def main() -> None:
    publishers = int(sys.argv[1]) if len(sys.argv) > 1 else 200
    client = redis.Redis.from_url(os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0"))
    prefix = f"benchflush{uuid.uuid4().hex[:6]}"
    store = StreamStore(client, Keys(prefix), 600)
    flusher = Flusher(store, 60.0)
    try:
        for _ in range(publishers):
            stream_id, writer = new_stream_id(), uuid.uuid4().hex
            store.create(stream_id, {"model": "m", "messages": []})
            assert store.leases.acquire(stream_id, 60, writer).claimed  # seq 1: start
            publisher = Publisher(store, stream_id, writer, first_seq=2, interval=60.0, outage_window=5)
            publisher.delta("x")  # the first delta goes at once; later ones wait for the flush
            flusher.add(publisher)
        best = float("inf")
        for _ in range(5):
            spent = 0.0
            for _ in range(FLUSHES):
                for publisher in list(flusher._publishers):
                    publisher.delta(" word")
                started = time.process_time()
                assert flusher.flush() == publishers
                spent += time.process_time() - started
            best = min(best, spent / (FLUSHES * publishers) * 1e6)
        print(f"flush: {best:.1f} us CPU per write ({publishers} publishers)")
    finally:
        for key in client.scan_iter(f"{prefix}:*"):
            client.delete(key)


if __name__ == "__main__":
    main()
