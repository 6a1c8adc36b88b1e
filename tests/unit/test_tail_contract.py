"""Following streams through the TailHub, on fakeredis and on real Redis."""

from __future__ import annotations

import threading
import time

import pytest
import redis

from spool.announcements import MAX_CARRIED_BYTES, read_announcement
from spool.events import Event, EventType
from spool.keys import Keys, new_stream_id
from spool.redis_client import node_of
from spool.streams import Scripts, StreamStore
from spool.tail import Subscription, TailHub, events, wait_for_end
from tests.unit.conftest import backend, started_stream


@pytest.fixture(params=["fakeredis", "redis", "embedded", "cluster"])
def redis_client(request, prefix):
    """This contract runs on a Redis Cluster too."""
    yield from backend(request, prefix)


REQUEST = {"messages": [{"role": "user", "content": "hi"}], "model": "m"}




def deltas(store, sid, first: int, texts: list[str]) -> None:
    store.append(sid, "w", first, [(EventType.DELTA, {"text": t}) for t in texts])


def finish(store, sid, seq: int) -> None:
    store.append(sid, "w", seq, [(EventType.DONE, {"finish_reason": "stop", "usage": None})])


def seqs(items) -> list[int]:
    return [e.seq for e in items if e is not None]


def test_replays_then_follows_live_to_the_terminal_event(store, hub):
    sid = started_stream(store)
    deltas(store, sid, 2, ["a", "b"])
    stream = events(store, hub, sid, 0, idle_timeout=5)
    assert [next(stream).seq for _ in range(3)] == [1, 2, 3]
    # Written after the follower caught up: delivered live by the hub.
    deltas(store, sid, 4, ["c"])
    assert next(stream).seq == 4
    finish(store, sid, 5)
    assert seqs(stream) == [5]
    assert hub.followed == 0


def test_a_late_follower_gets_what_the_hub_delivered_before_it_joined(store, hub):
    sid = started_stream(store)
    early = events(store, hub, sid, 0, idle_timeout=5)
    assert next(early).seq == 1
    deltas(store, sid, 2, ["a", "b", "c"])
    assert [next(early).seq for _ in range(3)] == [2, 3, 4]
    late = events(store, hub, sid, 1, idle_timeout=5)
    deltas(store, sid, 5, ["d"])
    finish(store, sid, 6)
    assert seqs(late) == [2, 3, 4, 5, 6]
    assert seqs(early) == [5, 6]


def test_idle_followers_get_a_tick_per_interval(store, hub):
    sid = started_stream(store)
    stream = events(store, hub, sid, 1, idle_timeout=0.05)
    assert next(stream) is None
    assert next(stream) is None
    finish(store, sid, 2)
    assert seqs(stream) == [2]


def test_followers_of_many_streams_share_the_hub(store, hub):
    sids = [started_stream(store) for _ in range(5)]
    streams = [events(store, hub, sid, 1, idle_timeout=5) for sid in sids]
    results: list[list[int]] = [[] for _ in sids]

    def consume(i: int) -> None:
        results[i] = seqs(streams[i])

    threads = [threading.Thread(target=consume, args=(i,)) for i in range(len(sids))]
    for thread in threads:
        thread.start()
    for sid in sids:
        deltas(store, sid, 2, ["x", "y"])
        finish(store, sid, 4)
    for thread in threads:
        thread.join(timeout=10)
    assert results == [[2, 3, 4]] * len(sids)


def test_wait_for_end_reports_the_terminal_type_or_times_out(store, hub):
    sid = started_stream(store)
    assert wait_for_end(store, hub, sid, 1, timeout=0.1) is None
    threading.Timer(0.05, finish, args=(store, sid, 2)).start()
    assert wait_for_end(store, hub, sid, 1, timeout=5) == b"done"


class GatedClient:
    """The hub's command client, whose XREADs wait until the test opens the gate."""

    def __init__(self, inner) -> None:
        self.inner = inner
        self.gate = threading.Event()

    def xread(self, streams):
        self.gate.wait()
        return self.inner.xread(streams)

    def __getattr__(self, name):
        return getattr(self.inner, name)


def test_a_read_at_a_stale_cursor_is_not_delivered_to_a_newer_follower(store, pubsub_factory):
    # Found by the benchmark's resume phase: a client dropped after seq 4 while
    # the hub's read for its old response (cursor 0-6) was in flight; the
    # resumed follower (after 4) must get 5 and 6, not jump to 7.
    sid = started_stream(store)
    deltas(store, sid, 2, ["a", "b", "c", "d", "e"])
    client = GatedClient(store.redis)
    hub = TailHub(client, pubsub_factory)
    key = store.keys.events(sid).encode()
    try:
        sub = hub.subscribe(key.decode(), 4)
        stale = [(key, [(b"0-7", {b"t": b"delta", b"d": b'{"text":"f"}'})])]
        hub._dispatch(stale, {key: b"0-6"})
        assert sub.inbox.empty()
        client.gate.set()
        assert [Event.from_entry(entry_id, fields).seq for entry_id, fields in sub.inbox.get(timeout=10)] == [5, 6]
    finally:
        client.gate.set()
        hub.stop()


class RecordingClient:
    """The hub's command client, recording the keys each XREAD names (on a
    cluster: each read script, one per slot, spool/streams/reads.py)."""

    def __init__(self, inner) -> None:
        self.inner = inner
        self.reads: list[set[bytes]] = []

    def xread(self, streams):
        self.reads.append(set(streams))
        return self.inner.xread(streams)

    def pipeline(self, *args, **kwargs):
        sha = Scripts.register(self.inner).read.sha
        return RecordingPipeline(self.inner.pipeline(*args, **kwargs), self.reads, sha)

    def __getattr__(self, name):
        return getattr(self.inner, name)


class RecordingPipeline:
    """A pipeline of RecordingClient's, recording the keys each read script names."""

    def __init__(self, inner, reads: list[set[bytes]], sha: str) -> None:
        self.inner, self.reads, self.sha = inner, reads, sha

    def __enter__(self):
        self.inner.__enter__()
        return self

    def __exit__(self, *exc):
        return self.inner.__exit__(*exc)

    def execute_command(self, *args, **options):
        if args[:2] == ("EVALSHA", self.sha):
            self.reads.append(set(args[3:3 + args[2]]))
        return self.inner.execute_command(*args, **options)

    def __getattr__(self, name):
        return getattr(self.inner, name)


def test_carried_events_need_no_read_and_reads_name_only_the_written_streams(store, pubsub_factory):
    busy, *quiet = [started_stream(store) for _ in range(3)]
    client = RecordingClient(store.redis)
    hub = TailHub(client, pubsub_factory, full_read_seconds=3600)
    try:
        for sid in quiet:
            hub.subscribe(store.keys.events(sid), 1)
        follower = events(store, hub, busy, 1, idle_timeout=5)
        deltas(store, busy, 2, ["a"])
        assert next(follower).seq == 2
        # Each join asks for one read of its key, once its subscription is
        # confirmed; on a loaded machine a quiet key's may come late.
        joined = {store.keys.events(sid).encode() for sid in (busy, *quiet)}
        deadline = time.monotonic() + 10
        while not joined <= set().union(*client.reads) and time.monotonic() < deadline:
            time.sleep(0.01)
        assert joined <= set().union(*client.reads)
        # Every read from here on started after the reads the joins asked for.
        after_joins = len(client.reads)
        deltas(store, busy, 3, ["b"])
        assert next(follower).fields == {"text": "b"}
        assert client.reads[after_joins:] == []  # the announcement carried it
        # Too large to carry: announced by key, and read.
        deltas(store, busy, 4, ["x" * (MAX_CARRIED_BYTES + 1)])
        assert next(follower).seq == 4
        assert client.reads[after_joins:]
        assert all(keys == {store.keys.events(busy).encode()} for keys in client.reads[after_joins:])
    finally:
        hub.stop()


class DroppablePubSub:
    """A subscription the test can break: once `dropped` is set, its next read
    raises, or (`silently`) its connection drops and redis-py reconnects and
    resubscribes on its own."""

    def __init__(self, inner, dropped: threading.Event, silently: bool) -> None:
        self.inner = inner
        self.dropped = dropped
        self.silently = silently

    def __getattr__(self, name):
        return getattr(self.inner, name)

    def get_message(self, timeout=0.0):
        if self.dropped.is_set():
            if not self.silently:
                raise redis.ConnectionError("dropped by the test")
            self.dropped.clear()
            self.inner.connection.disconnect()
        return self.inner.get_message(timeout=timeout)


@pytest.mark.parametrize("silently", [False, True], ids=["error", "resubscribed"])
def test_a_lost_subscription_ends_followers_so_clients_resume(store, pubsub_factory, silently):
    sid = started_stream(store)
    dropped = threading.Event()

    class Client:
        def __init__(self, node: str = "") -> None:
            self.inner = pubsub_factory(node)

        def pubsub(self):
            return DroppablePubSub(self.inner.pubsub(), dropped, silently)

    hub = TailHub(store.redis, Client)
    try:
        stream = events(store, hub, sid, 1, idle_timeout=5)
        deltas(store, sid, 2, ["a"])
        assert next(stream).seq == 2  # the hub is serving
        dropped.set()
        assert next(stream, "ended") == "ended"  # without a terminal event: the client resumes
        assert hub.followed == 0
        # The next follower brings up a fresh subscription.
        dropped.clear()
        stream = events(store, hub, sid, 2, idle_timeout=5)
        finish(store, sid, 3)
        assert seqs(stream) == [3]
    finally:
        hub.stop()


def test_a_subscription_killed_by_redis_ends_followers(prefix, redis_url):
    # redis-py reconnects and resubscribes by itself; what was published in
    # between is lost, so the hub must notice and end its followers.
    name = f"{prefix}-hub"
    client = redis.Redis.from_url(redis_url, protocol=2)
    real = StreamStore(client, Keys(prefix), 3600)
    hub = TailHub(client, lambda node: redis.Redis.from_url(redis_url, client_name=name, protocol=2))
    try:
        sid = started_stream(real)
        stream = events(real, hub, sid, 1, idle_timeout=5)
        deltas(real, sid, 2, ["a"])
        assert next(stream).seq == 2  # the hub is serving
        [conn] = [c for c in client.client_list() if c["name"] == name]
        client.client_kill_filter(_id=conn["id"])
        assert next(stream, "ended") == "ended"
        assert hub.followed == 0
    finally:
        hub.stop()
        keys = list(client.scan_iter(match=f"{prefix}:*"))
        if keys:
            client.delete(*keys)
        client.close()


def test_a_write_that_announced_nothing_is_found_by_the_full_read(store, pubsub_factory):
    # A worker of an older version, during a rolling deploy, appends without PUBLISH.
    sid = started_stream(store)
    hub = TailHub(store.redis, pubsub_factory, full_read_seconds=0.1)
    try:
        stream = events(store, hub, sid, 1, idle_timeout=5)
        store.redis.xadd(store.keys.events(sid), {"t": "done", "d": "{}"}, id="0-2")
        assert seqs(stream) == [2]
    finally:
        hub.stop()


def test_every_write_that_adds_an_event_announces_its_stream(store, pubsub_factory):
    appended, queued, lost = (new_stream_id() for _ in range(3))
    subscriptions = []

    def subscribed(sid: str):
        # The stream's shard channel, on the node serving its slot.
        channel = store.keys.activity(sid)
        pubsub = pubsub_factory(node_of(store.redis, channel)).pubsub()
        subscriptions.append(pubsub)
        pubsub.ssubscribe(channel)
        assert next_message(pubsub, "ssubscribe") == 1
        return pubsub

    def next_message(pubsub, type_: str):
        while True:
            message = pubsub.get_message(timeout=10)
            assert message is not None
            if message["type"] == type_:
                return message["data"]

    try:
        pubsub = subscribed(appended)
        store.create(appended, REQUEST)
        store.leases.acquire(appended, 30, "w")
        store.append(appended, "w", 2, [(EventType.DELTA, {"text": "a"})])
        assert next_message(pubsub, "smessage") == store.keys.events(appended).encode()  # the lease's start
        # An append's announcement carries its events (spool/announcements.py).
        assert read_announcement(next_message(pubsub, "smessage")) == (
            store.keys.events(appended).encode(), 2, [(b"0-2", {b"t": b"delta", b"d": b'{"text":"a"}'})])
        pubsub = subscribed(queued)
        store.create(queued, REQUEST)
        store.cancel(queued)
        assert next_message(pubsub, "smessage") == store.keys.events(queued).encode()
        pubsub = subscribed(lost)
        store.create(lost, REQUEST)
        assert store.leases.acquire(lost, -1, "w").claimed  # its worker vanishes at once
        assert next_message(pubsub, "smessage") == store.keys.events(lost).encode()
        assert store.leases.reclaim(lost, "worker_lost", max_attempts=1) == ("failed", 1)
        assert next_message(pubsub, "smessage") == store.keys.events(lost).encode()
    finally:
        for pubsub in subscriptions:
            pubsub.close()


def test_a_hub_keeps_its_subscription_between_followers_for_a_while(store, pubsub_factory):
    def counted(node: str = ""):
        subscriptions.append(node)
        return pubsub_factory(node)

    for linger in (30.0, 0.0):
        subscriptions: list[str] = []
        hub = TailHub(store.redis, counted, linger_seconds=linger)
        try:
            for _ in range(2):  # two clients, one after the other
                sid = started_stream(store)
                stream = events(store, hub, sid, 1, idle_timeout=5)
                deltas(store, sid, 2, ["a"])  # delivered live, through the subscription
                finish(store, sid, 3)
                assert seqs(stream) == [2, 3] and hub.followed == 0
                if linger == 0:
                    # Without a linger the hub ends as soon as nobody follows anything.
                    thread = hub._thread
                    if thread is not None:
                        thread.join(5)
                        assert not thread.is_alive()
        finally:
            hub.stop()
        # One connection per node (a single Redis is one node) for both clients, or one each.
        assert len(subscriptions) == (len(set(subscriptions)) if linger else 2)


class _SilentHub:
    """A hub whose thread never delivers (as when it stalls): subscribers get
    nothing live."""

    followed = 0

    def subscribe(self, key, after):
        return Subscription(key, after)

    def unsubscribe(self, sub):
        pass


def test_a_follower_reaches_the_end_even_if_the_hub_never_delivers(store):
    sid = started_stream(store)
    stream = events(store, _SilentHub(), sid, 1, idle_timeout=0.05)
    assert next(stream) is None  # nothing yet: an ordinary quiet interval
    deltas(store, sid, 2, ["a", "b"])
    finish(store, sid, 4)
    # The next quiet interval reads the stream itself: every event, once, in order.
    assert seqs(stream) == [2, 3, 4]
