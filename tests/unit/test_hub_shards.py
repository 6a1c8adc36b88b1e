"""The TailHub's shard subscriptions: one connection per node, and a slot
that moves away ends the followers so they resume (spool/hub.py)."""

from __future__ import annotations

import pytest

from spool.events import EventType
from spool.hub import TailHub
from spool.redis_client import node_of
from spool.tail import events
from tests.unit.conftest import backend, started_stream



@pytest.fixture(params=["fakeredis", "redis", "cluster"])
def redis_client(request, prefix):
    yield from backend(request, prefix)




class MovingPubSub:
    """A node's subscription on which the server unsubscribes a channel by
    itself, as Redis does when the channel's slot moves to another node."""

    def __init__(self, inner, moved: list[bytes]) -> None:
        self.inner = inner
        self.moved = moved

    def __getattr__(self, name):
        return getattr(self.inner, name)

    def get_message(self, timeout=0.0):
        if self.moved:
            return {"type": "sunsubscribe", "channel": self.moved.pop(), "pattern": None, "data": 0}
        return self.inner.get_message(timeout=timeout)


def test_a_slot_moving_away_ends_the_followers_so_they_resume(store, pubsub_factory):
    sid = started_stream(store)
    moved: list[bytes] = []

    class Client:
        def __init__(self, node: str = "") -> None:
            self.inner = pubsub_factory(node)

        def pubsub(self):
            return MovingPubSub(self.inner.pubsub(), moved)

    hub = TailHub(store.redis, Client)
    try:
        stream = events(store, hub, sid, 1, idle_timeout=5)
        store.append(sid, "w", 2, [(EventType.DELTA, {"text": "a"})])
        assert next(stream).seq == 2  # subscribed and served
        moved.append(store.keys.activity(sid).encode())
        assert next(stream, "ended") == "ended"  # no terminal event: the client resumes
        assert hub.followed == 0
    finally:
        hub.stop()


def test_followed_streams_share_one_subscription_per_node(store, pubsub_factory):
    sids = [started_stream(store) for _ in range(12)]
    nodes: list[str] = []

    def counted(node: str = ""):
        nodes.append(node)
        return pubsub_factory(node)

    hub = TailHub(store.redis, counted)
    try:
        streams = [events(store, hub, sid, 1, idle_timeout=5) for sid in sids]
        for sid in sids:
            store.append(sid, "w", 2, [(EventType.DONE, {"finish_reason": "stop", "usage": None})])
        assert all([e.seq for e in stream if e is not None] == [2] for stream in streams)
        # One connection per node the streams live on (a single Redis: one).
        assert sorted(nodes) == sorted({node_of(store.redis, store.keys.activity(sid)) for sid in sids})
    finally:
        hub.stop()
