"""Following streams through the TailHub, on fakeredis and on real Redis."""

from __future__ import annotations

import threading

from spool.events import EventType
from spool.keys import new_stream_id
from spool.tail import TailHub, events, wait_for_end
from spool.wire import seq_of

REQUEST = {"messages": [{"role": "user", "content": "hi"}], "model": "m"}


def started(store) -> str:
    sid = new_stream_id()
    store.create(sid, REQUEST)
    store.append(sid, "w", 1, [(EventType.START, {"id": sid, "model": "m", "created": 1})], begin=True)
    return sid


def deltas(store, sid, first: int, texts: list[str]) -> None:
    store.append(sid, "w", first, [(EventType.DELTA, {"text": t}) for t in texts])


def finish(store, sid, seq: int) -> None:
    store.append(sid, "w", seq, [(EventType.DONE, {"finish_reason": "stop", "usage": None})])


def seqs(items) -> list[int]:
    return [e.seq for e in items if e is not None]


def test_replays_then_follows_live_to_the_terminal_event(store, hub):
    sid = started(store)
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
    sid = started(store)
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
    sid = started(store)
    stream = events(store, hub, sid, 1, idle_timeout=0.05)
    assert next(stream) is None
    assert next(stream) is None
    finish(store, sid, 2)
    assert seqs(stream) == [2]


def test_followers_of_many_streams_share_the_hub(store, hub):
    sids = [started(store) for _ in range(5)]
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
    sid = started(store)
    assert wait_for_end(store, hub, sid, 1, timeout=0.1) is None
    threading.Timer(0.05, finish, args=(store, sid, 2)).start()
    assert wait_for_end(store, hub, sid, 1, timeout=5) == b"done"


class GatedClient:
    """A blocking client whose XREADs wait until the test opens the gate."""

    def __init__(self, inner) -> None:
        self.inner = inner
        self.gate = threading.Event()

    def xread(self, streams, block):
        self.gate.wait()
        return self.inner.xread(streams, block=block)

    def close(self) -> None:
        self.gate.set()


def test_a_read_at_a_stale_cursor_is_not_delivered_to_a_newer_follower(store, prefix):
    # Found by the benchmark's resume phase: a client dropped after seq 4 while
    # the hub's read for its old response (cursor 0-6) was in flight; the
    # resumed follower (after 4) must get 5 and 6, not jump to 7.
    sid = started(store)
    deltas(store, sid, 2, ["a", "b", "c", "d", "e"])
    client = GatedClient(store.redis)
    hub = TailHub(store.redis, lambda: client, f"{prefix}:wake", block_ms=200)
    key = store.keys.events(sid).encode()
    try:
        sub = hub.subscribe(key.decode(), 4)
        stale = [(key, [(b"0-7", {b"t": b"delta", b"d": b'{"text":"f"}'})])]
        hub._dispatch(stale, {key: b"0-6"})
        assert sub.inbox.empty()
        client.gate.set()
        assert [seq_of(entry_id) for entry_id, _ in sub.inbox.get(timeout=10)] == [5, 6]
    finally:
        hub.stop()
