"""Following streams through the TailHub, on fakeredis and on real Redis."""

from __future__ import annotations

import threading

from spool.events import EventType
from spool.keys import new_stream_id
from spool.tail import events, wait_for_end

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


def test_a_read_in_flight_when_a_stream_is_refollowed_from_earlier_is_not_delivered(store, prefix):
    """The race the chaos suite found: a follower drops (the hub's cursor for
    the stream is at 4), rejoins from seq 2 while the hub's XREAD, issued from
    cursor 4, is in flight. Its reply must not reach the new follower, which
    would miss seqs 3 and 4."""
    from spool.tail import TailHub

    sid = started(store)
    deltas(store, sid, 2, ["a", "b", "c", "d"])
    key = store.keys.events(sid).encode()
    hub = TailHub(store.redis, lambda: store.redis, f"{prefix}:wake")
    hub._stopped = True  # its thread ends at once: this test plays the XREAD replies
    sub = hub.subscribe(store.keys.events(sid), 2)  # new key: the hub's cursor is 0-2
    stale_reply = [[key, [(b"0-5", {b"t": b"delta", b"d": b'{"text":"d"}'})]]]
    hub._dispatch(stale_reply, {key: b"0-4"})
    assert sub.inbox.empty()
    hub._dispatch([[key, store.redis.xrange(key, "0-3", "+")]], {key: b"0-2"})
    assert [int(entry_id[2:]) for entry_id, _ in sub.inbox.get_nowait()] == [3, 4, 5]
    hub.unsubscribe(sub)
