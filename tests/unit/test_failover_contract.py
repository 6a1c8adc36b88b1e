"""What a failover that lost acknowledged writes leaves, and how the store
repairs it without changing any seq a client may have read (spool/streams/journal.py).

A promoted replica that was behind looks like the stream with its last
entries gone and its meta from before them; the tests make that state by hand.
"""

from __future__ import annotations

import json

import pytest
import redis

from spool.errors import StreamClosedError, StreamNotFoundError
from spool.events import EventType
from spool.streams import Journal
from spool.keys import Keys, new_stream_id
from spool.streams import FAILOVER_SEQ_MARGIN, StreamStore
from tests.unit.conftest import backend

REQUEST = {"messages": [{"role": "user", "content": "hi"}], "model": "m"}


@pytest.fixture(params=["fakeredis", "redis", "cluster"])
def redis_client(request, prefix):
    yield from backend(request, prefix)


def delta(text: str):
    return (EventType.DELTA, {"text": text})


def entries(store: StreamStore, sid: str) -> list[tuple[int, bytes, bytes]]:
    return [(e.seq, e.type, e.data) for e in store.read(sid, 0)]


def lose_tail(store: StreamStore, sid: str, keep: int, meta: dict) -> None:
    """Make the stream look as a replica that had only seqs <= keep would."""
    key = store.keys.events(sid)
    kept = store.redis.xrange(key, "-", f"0-{keep}")
    store.redis.delete(key)  # XDEL would leave the stream's last id where it was
    for entry_id, fields in kept:
        store.redis.xadd(key, fields, id=entry_id)
    store.redis.hset(store.keys.meta(sid), mapping={"last_seq": keep, **meta})


def test_the_live_writer_restores_a_lost_tail_identically(store):
    sid = new_stream_id()
    store.create(sid, REQUEST)
    assert store.leases.acquire(sid, 30, writer="w").claimed  # seq 1: start
    store.append(sid, "w", 2, [delta("a"), delta("b")])
    store.append(sid, "w", 4, [delta("c")])
    read_by_clients = entries(store, sid)
    lose_tail(store, sid, 2, {})
    result = store.append(sid, "w", 5, [delta("d")])
    assert result.last_seq == 5
    # Seqs 3 and 4 are back with the content clients read; nothing else moved.
    assert entries(store, sid)[:4] == read_by_clients
    assert [json.loads(e.data)["text"] for e in store.read(sid, 1)] == ["a", "b", "c", "d"]


def test_a_lost_claim_is_restored_from_the_start(store):
    sid = new_stream_id()
    store.create(sid, REQUEST)
    assert store.leases.acquire(sid, 30, writer="w").claimed
    store.append(sid, "w", 2, [delta("a")])
    read_by_clients = entries(store, sid)
    # The replica never saw the lease: the stream is queued and empty there.
    lose_tail(store, sid, 0, {"status": "queued", "writer": ""})
    store.append(sid, "w", 3, [delta("b")])
    assert entries(store, sid)[:2] == read_by_clients
    assert store.meta(sid).status == "running" and store.meta(sid).writer == "w"


def test_a_lost_rerun_claim_is_restored_with_the_same_reset(store):
    sid = new_stream_id()
    store.create(sid, REQUEST)
    assert store.leases.acquire(sid, -1, writer="w1").claimed  # seq 1: start
    assert store.leases.reclaim(sid, "worker_lost", max_attempts=3) == ("requeue", 2)
    assert store.leases.acquire(sid, 30, writer="w2").claimed  # seq 2: reset
    store.append(sid, "w2", 3, [delta("a")])
    read_by_clients = entries(store, sid)
    # The replica saw the requeue, not the rerun's lease: queued at seq 1.
    lose_tail(store, sid, 1, {"status": "queued", "writer": ""})
    assert store.append(sid, "w2", 4, [delta("b")]).last_seq == 4
    assert entries(store, sid)[:3] == read_by_clients
    assert store.meta(sid).status == "running" and store.meta(sid).writer == "w2"


def test_a_writers_own_reset_is_not_taken_for_its_claim(store):
    # Queued at a seq past the claim: only a requeue does that, and a lease
    # taken now would write another `reset` than the one the writer wrote.
    sid = new_stream_id()
    store.create(sid, REQUEST)
    assert store.leases.acquire(sid, 30, writer="w").claimed
    store.append(sid, "w", 2, [delta("a"), (EventType.RESET, {"attempt": 2, "reason": "upstream_truncated"})])
    store.append(sid, "w", 4, [delta("b")])
    lose_tail(store, sid, 2, {"status": "queued", "writer": ""})
    with pytest.raises(StreamClosedError):
        store.append(sid, "w", 5, [delta("c")])
    assert len(entries(store, sid)) == 2 and store.meta(sid).status == "queued"


def test_a_requeued_stream_is_not_taken_back(store):
    # A reclaim (not a failover) requeued it: the writer's events are all there.
    sid = new_stream_id()
    store.create(sid, REQUEST)
    assert store.leases.acquire(sid, -1, writer="w").claimed
    store.append(sid, "w", 2, [delta("a")])
    assert store.leases.reclaim(sid, "worker_lost", max_attempts=3) == ("requeue", 2)
    with pytest.raises(StreamClosedError):
        store.append(sid, "w", 3, [delta("b")])


def test_a_tail_the_writer_never_wrote_is_not_invented(store):
    sid = new_stream_id()
    store.create(sid, REQUEST)
    assert store.leases.acquire(sid, 30, "w").claimed  # seq 1: start
    other = StreamStore(store.redis, store.keys, store.ttl)  # another process: an empty journal
    with pytest.raises(StreamClosedError):
        other.append(sid, "w", 5, [delta("x")])


def test_the_journal_keeps_a_contiguous_run_and_forgets_ended_streams():
    journal = Journal()
    journal.record("s", "w", 1, [delta("a"), delta("b")])
    journal.record("s", "w", 3, [delta("c")])
    assert journal.since("s", "w", 1, 4) == [delta("b"), delta("c")]
    assert journal.since("s", "w", 0, 5) is None  # seq 4 was never written
    journal.record("s", "w", 2, [delta("B")])  # a retried write replaces from its seq
    assert journal.since("s", "w", 0, 3) == [delta("a"), delta("B")]
    journal.record("s", "w", 3, [(EventType.DONE, {"finish_reason": "stop", "usage": None})])
    assert journal.since("s", "w", 0, 2) is None


def test_a_rerun_after_a_failover_skips_past_every_seq_clients_may_hold(redis_url, prefix):
    # The writer was lost with the master: nobody can restore the tail, so
    # the rerun's `reset` must not land on a seq clients read with other content.
    client = redis.Redis.from_url(redis_url, protocol=2)
    store = StreamStore(client, Keys(prefix), 3600)
    sid = new_stream_id()
    try:
        store.create(sid, REQUEST)
        assert store.leases.acquire(sid, -1, writer="w").claimed
        store.append(sid, "w", 2, [delta("a")])
        # As if the lease had been taken on another master (a replication id
        # this server does not have).
        client.hset(store.keys.meta(sid), "replid", "0" * 40)
        assert store.leases.reclaim(sid, "worker_lost", max_attempts=3) == ("requeue", 2)
        meta = store.meta(sid)
        assert meta.last_seq == 2 + FAILOVER_SEQ_MARGIN and meta.history_lost
        # Without a failover a rerun continues at the next seq.
        plain = new_stream_id()
        store.create(plain, REQUEST)
        assert store.leases.acquire(plain, -1, writer="w").claimed
        assert store.leases.reclaim(plain, "worker_lost", max_attempts=3) == ("requeue", 2)
        assert store.meta(plain).last_seq == 1
    finally:
        for key in client.scan_iter(match=f"{prefix}:*"):
            client.delete(key)
        client.close()


def test_a_stream_whose_lease_was_lost_with_its_writer_reruns_past_every_seq_served(store):
    # The master died before the lease reached the replica, and the worker
    # with it: the promoted replica has the stream as its gateway created it.
    sid = new_stream_id()
    store.create(sid, REQUEST)
    as_created = store.redis.hgetall(store.keys.meta(sid))
    assert store.leases.acquire(sid, 30, writer="dead").claimed
    store.append(sid, "dead", 2, [delta("lost")])
    read_by_clients = entries(store, sid)
    store.redis.delete(store.keys.meta(sid), store.keys.events(sid))
    store.redis.hset(store.keys.meta(sid), mapping=as_created)
    assert store.leases.prepare_rerun(sid, "worker_lost")
    meta = store.meta(sid)
    assert (meta.status, meta.last_seq, meta.attempt, meta.history_lost) == ("queued", 1 + FAILOVER_SEQ_MARGIN, 2, True)
    # seq 1 is the `start` clients read (its gateway's); the rerun's claim is a `reset` past the margin.
    assert entries(store, sid) == read_by_clients[:1]
    lease = store.leases.acquire(sid, 30, writer="w")
    assert lease.claim == (EventType.RESET, {"attempt": 2, "reason": "worker_lost"})
    assert entries(store, sid)[1][0] == 2 + FAILOVER_SEQ_MARGIN
    # Leased now, so not marked again; a stream already past its start only skips.
    assert not store.leases.prepare_rerun(sid, "worker_lost")
    assert store.leases.reclaim(sid, "worker_lost", 3, force=True) == ("requeue", 3)
    assert store.leases.prepare_rerun(sid, "worker_lost")
    assert store.meta(sid).last_seq == 2 + 2 * FAILOVER_SEQ_MARGIN and len(entries(store, sid)) == 2


def test_marking_a_gone_or_ended_stream_for_a_rerun_changes_nothing(store):
    with pytest.raises(StreamNotFoundError):
        store.leases.prepare_rerun(new_stream_id(), "worker_lost")
    sid = new_stream_id()
    store.create(sid, REQUEST)
    assert store.fail(sid, "worker_lost", "gone")
    before = (store.redis.hgetall(store.keys.meta(sid)), entries(store, sid))
    assert not store.leases.prepare_rerun(sid, "worker_lost")
    assert (store.redis.hgetall(store.keys.meta(sid)), entries(store, sid)) == before
