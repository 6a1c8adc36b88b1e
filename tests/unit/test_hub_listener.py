"""The TailHub's listener hears every message its subscription delivers,
however many are waiting at once (spool/hub_channels.py), and the hub's full
read still serves a followed key whose confirmation never came (spool/hub.py).

A listener that reads a backlog longer than one batch used to drop one
message per full batch: a lost SSUBSCRIBE confirmation left its key
unconfirmed for good (never read, not even by the full read), which is the
gateway stall of docs/benchmarks.md ("A stall found on the way")."""

from __future__ import annotations

import queue
import threading
import time

import pytest

from spool.events import EventType
from spool.hub import HUB_STOPPED, TailHub
from spool.hub_channels import LISTEN_BATCH
from tests.unit.conftest import backend, started_stream

DONE = [(EventType.DONE, {"finish_reason": "stop", "usage": None})]
# Bounds a wait that should end at once; a failing test ends after it.
DEADLINE_SECONDS = 10.0


@pytest.fixture(params=["fakeredis", "redis"])
def redis_client(request, prefix):
    yield from backend(request, prefix)




class WrappedPubSub:
    """A node's subscription, passed through but for what a test overrides."""

    def __init__(self, inner) -> None:
        self.inner = inner

    def __getattr__(self, name):
        return getattr(self.inner, name)


class HeldPubSub(WrappedPubSub):
    """A subscription whose listener reads nothing until `count` channels
    were SSUBSCRIBEd: their confirmations wait as one backlog, as they do on
    a gateway whose listener greenlet is not scheduled for a while."""

    def __init__(self, inner, count: int, sent: threading.Event) -> None:
        super().__init__(inner)
        self.count = count
        self.sent = sent
        self.subscribed_channels = 0

    def ssubscribe(self, *channels):
        reply = self.inner.ssubscribe(*channels)
        self.subscribed_channels += len(channels)
        if self.subscribed_channels >= self.count:
            self.sent.set()
        return reply

    def get_message(self, timeout=0.0):
        self.sent.wait(DEADLINE_SECONDS)
        return self.inner.get_message(timeout=timeout)


class DeafPubSub(WrappedPubSub):
    """A subscription whose listener never hears the confirmation of `deaf`."""

    def __init__(self, inner, deaf: bytes) -> None:
        super().__init__(inner)
        self.deaf = deaf

    def get_message(self, timeout=0.0):
        message = self.inner.get_message(timeout=timeout)
        if message and message["type"] == "ssubscribe" and message["channel"] == self.deaf:
            return None
        return message


def factory_of(pubsub_factory, wrap):
    """A pubsub_factory whose clients' subscriptions are `wrap(subscription)`."""

    class Client:
        def __init__(self, node: str = "") -> None:
            self.inner = pubsub_factory(node)

        def pubsub(self):
            return wrap(self.inner.pubsub())

    return Client


def unserved(subs, deadline: float) -> list:
    """The subscriptions that got no entries by `deadline`."""
    late = []
    for sub in subs:
        try:
            batch = sub.inbox.get(timeout=max(0.0, deadline - time.monotonic()))
        except queue.Empty:
            late.append(sub.key)
            continue
        assert batch is not HUB_STOPPED
    return late


def test_a_backlog_longer_than_a_batch_loses_no_confirmation(store, pubsub_factory):
    count = 2 * LISTEN_BATCH + 10  # two full batches and a rest
    sids = [started_stream(store) for _ in range(count)]
    sent = threading.Event()
    # No full read during the test: only what the listener hears gets read.
    hub = TailHub(store.redis, factory_of(pubsub_factory, lambda inner: HeldPubSub(inner, count, sent)),
                  full_read_seconds=3600)
    try:
        subs = [hub.subscribe(store.keys.events(sid), 1) for sid in sids]
        assert sent.wait(DEADLINE_SECONDS), "the hub did not SSUBSCRIBE every followed stream"
        for sid in sids:
            store.append(sid, "w", 2, DONE)
        assert unserved(subs, time.monotonic() + DEADLINE_SECONDS) == []
    finally:
        hub.stop()


def test_the_full_read_serves_a_key_whose_confirmation_never_came(store, pubsub_factory):
    deaf, heard = started_stream(store), started_stream(store)
    channel = store.keys.activity(deaf).encode()
    hub = TailHub(store.redis, factory_of(pubsub_factory, lambda inner: DeafPubSub(inner, channel)),
                  full_read_seconds=0.2)
    try:
        subs = [hub.subscribe(store.keys.events(sid), 1) for sid in (deaf, heard)]
        for sid in (deaf, heard):
            store.append(sid, "w", 2, DONE)
        assert unserved(subs, time.monotonic() + DEADLINE_SECONDS) == []
    finally:
        hub.stop()
