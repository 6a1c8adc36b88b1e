"""`python -m bench.activity_cost`: what the append script's notification and
the failover guard cost Redis, on a private single redis-server.

Compares, per append call (one Flusher tick of one stream, i.e. the cost
spread over the tokens of that tick):
- `publish`:  the former design, PUBLISH of the events key on one global
  channel that every gateway SUBSCRIBEs to (here: 1 subscriber);
- `spublish`: the current one, SPUBLISH on the stream's own shard channel,
  which the gateway following the stream SSUBSCRIBEs to (here: 1 subscriber
  holding `--streams` channels);
- `none`:     the script without any notification, as a floor.
It reports Redis CPU (INFO cpu, user + sys) per call. The journal that
restores a lost tail lives in the worker's memory and costs Redis nothing.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import tempfile
import time

import redis

from cli.dev import free_port

_SCRIPT = """
redis.call('XADD', KEYS[1], '*', 't', 'delta', 'd', ARGV[1])
redis.call('HSET', KEYS[2], 'last_seq', '1')
if ARGV[2] == 'publish' then redis.call('PUBLISH', 'spool:activity', KEYS[1]) end
if ARGV[2] == 'spublish' then redis.call('SPUBLISH', KEYS[3], KEYS[1]) end
return 1
"""


def _cpu(client: redis.Redis) -> float:
    info = client.info("cpu")
    return info["used_cpu_user"] + info["used_cpu_sys"]


def measure(client: redis.Redis, mode: str, streams: int, calls: int) -> float:
    """Redis CPU µs per append call in `mode`, over `streams` followed streams."""
    script = client.register_script(_SCRIPT)
    listener = redis.Redis(port=client.connection_pool.connection_kwargs["port"])
    pubsub = listener.pubsub()
    if mode == "publish":
        pubsub.subscribe("spool:activity")
    elif mode == "spublish":
        for i in range(streams):
            pubsub.ssubscribe(f"spool:{{s{i}}}:activity")
    data = '{"text":"hello "}'
    before = _cpu(client)
    with client.pipeline(transaction=False) as pipe:
        for n in range(calls):
            i = n % streams
            script(keys=[f"spool:{{s{i}}}:events", f"spool:{{s{i}}}:meta", f"spool:{{s{i}}}:activity"],
                   args=[data, mode], client=pipe)
            if n % 500 == 499:
                pipe.execute()
                while pubsub.get_message(timeout=0) is not None:
                    pass
        pipe.execute()
    spent = _cpu(client) - before
    pubsub.close()
    listener.close()
    client.flushall()
    return spent / calls * 1e6


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.activity_cost", description=__doc__)
    parser.add_argument("--streams", type=int, default=1000)
    parser.add_argument("--calls", type=int, default=200_000)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args(argv)
    port = free_port()
    directory = tempfile.mkdtemp(prefix="spool-bench-redis-")
    server = subprocess.Popen([shutil.which("redis-server") or "redis-server", "--port", str(port), "--bind",
                               "127.0.0.1", "--save", "", "--appendonly", "no", "--dir", directory],
                              stdout=subprocess.DEVNULL)
    try:
        client = redis.Redis(port=port)
        deadline = time.monotonic() + 10
        while True:
            try:
                client.ping()
                break
            except redis.ConnectionError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)
        print(f"Redis CPU per append call, {args.streams} followed streams, {args.calls} calls, "
              f"best of {args.rounds}")
        for mode in ("none", "publish", "spublish"):
            best = min(measure(client, mode, args.streams, args.calls) for _ in range(args.rounds))
            print(f"  {mode:9s} {best:6.2f} µs")
    finally:
        server.terminate()
        server.wait(timeout=10)
        shutil.rmtree(directory, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
