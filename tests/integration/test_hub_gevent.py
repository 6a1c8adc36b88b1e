"""The TailHub as the gateway runs it: under gevent's monkey-patching, with
bursts of short streams whose followers all subscribe before the hub's
greenlet runs (the listener then meets hundreds of waiting confirmations at
once), on the real Redis. Every follower gets its stream's end from the hub
alone: both safety nets (the hub's full read, the follower's direct read
after a quiet interval) are set out of reach.

The hub runs in a child process: monkey-patching cannot be undone in the
test process."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

# Each wave: N streams created, every follower subscribed, then each stream
# gets its two tokens and its end. Between waves nobody follows anything.
CHILD = r"""
from gevent import monkey
monkey.patch_all()

import json, sys, time
import gevent
from spool.events import EventType
from spool.hub import TailHub
from spool.keys import Keys, new_stream_id
from spool.redis_client import connect, pubsub_factory
from spool.streams import StreamStore
from spool.tail import events

url, prefix, per_wave, waves = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
client = connect(url, max_connections=8)
store = StreamStore(client, Keys(prefix), 120)
hub = TailHub(client, pubsub_factory(url, client), full_read_seconds=3600)
ended = set()

def follow(sid):
    for event in events(store, hub, sid, 0, idle_timeout=3600):
        if event is not None and event.is_terminal:
            ended.add(sid)
            return

def answer(sid):
    store.leases.acquire(sid, 30, "w")
    store.append(sid, "w", 2, [(EventType.DELTA, {"text": "a"})])
    store.append(sid, "w", 3, [(EventType.DELTA, {"text": "b"}),
                               (EventType.DONE, {"finish_reason": "stop", "usage": None})])

sids = []
for _ in range(waves):
    wave = [new_stream_id() for _ in range(per_wave)]
    for sid in wave:
        store.create(sid, {"messages": [{"role": "user", "content": "hi"}], "model": "m"})
    followers = [gevent.spawn(follow, sid) for sid in wave]
    gevent.sleep(0)  # every follower subscribes before the hub's greenlet runs
    gevent.joinall([gevent.spawn(answer, sid) for sid in wave])
    gevent.joinall(followers, timeout=10)
    sids += wave
hub.stop()
print(json.dumps({"streams": len(sids), "unended": [sid for sid in sids if sid not in ended]}))
"""


def test_every_follower_of_a_burst_gets_its_end_from_the_hub_under_gevent(redis_url, prefix):
    child = subprocess.run([sys.executable, "-c", CHILD, redis_url, prefix, "600", "2"],
                           cwd=ROOT, capture_output=True, text=True, timeout=90)
    assert child.returncode == 0, child.stderr
    result = json.loads(child.stdout.splitlines()[-1])
    assert result == {"streams": 1200, "unended": []}, child.stderr
