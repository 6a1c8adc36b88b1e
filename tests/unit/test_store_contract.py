"""The stream store's contract, on fakeredis and on real Redis."""

from __future__ import annotations

import json
import time

import pytest

from gateway.snapshot import snapshot
from spool.errors import StreamClosedError, StreamNotFoundError
from spool.events import EventType, StreamStatus, encode_data, start_data
from spool.keys import new_stream_id
from spool.redis_client import node_of
from spool.streams import PAGE, AppendRequest, StreamStore
from tests.unit.conftest import TTL, backend


@pytest.fixture(params=["fakeredis", "redis", "embedded", "cluster"])
def redis_client(request, prefix):
    """This contract runs on a Redis Cluster too."""
    yield from backend(request, prefix)


REQUEST = {"messages": [{"role": "user", "content": "hi"}], "model": "m", "temperature": None, "max_tokens": None}
START = (EventType.START, {"id": "x", "model": "m", "created": 1})


def next_message(pubsub, timeout: float = 2.0):
    """The next published message (get_message returns None for the ignored
    subscribe confirmation, so it may take more than one call)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        message = pubsub.get_message(timeout=deadline - time.monotonic())
        if message is not None:
            return message
    raise AssertionError("no message published")


def delta(text: str):
    return (EventType.DELTA, {"text": text})


@pytest.fixture
def sid(store) -> str:
    stream_id = new_stream_id()
    store.create(stream_id, REQUEST)
    return stream_id


def test_create_records_a_queued_stream_with_ttl(store, sid):
    meta = store.meta(sid)
    assert meta.status == "queued" and meta.last_seq == 0
    assert json.loads(meta.request) == REQUEST
    assert 0 < store.redis.ttl(store.keys.meta(sid)) <= TTL


def test_events_get_explicit_ids_and_meta_follows(store, sid):
    assert store.leases.acquire(sid, 30, "w1").claimed  # seq 1: start
    assert store.meta(sid).status == "running"
    store.append(sid, "w1", 2, [delta("a"), delta("é")])
    store.append(sid, "w1", 4, [(EventType.DONE, {"finish_reason": "stop", "usage": {"total_tokens": 3}})])
    ids = [entry_id for entry_id, _ in store.redis.xrange(store.keys.events(sid))]
    assert ids == [b"0-1", b"0-2", b"0-3", b"0-4"]
    snap = snapshot(store, sid)
    assert snap["status"] == "done" and snap["text"] == "aé" and snap["last_seq"] == 4
    assert snap["finish_reason"] == "stop" and snap["usage"] == {"total_tokens": 3}
    assert snap["ended_at"] >= snap["started_at"] >= snap["created_at"]
    assert 0 < store.redis.ttl(store.keys.events(sid)) <= TTL


def test_a_retried_write_that_landed_is_not_duplicated(store, sid):
    store.leases.acquire(sid, 30, "w1")  # seq 1: start
    store.append(sid, "w1", 2, [delta("a"), delta("b")])
    # The reply was lost and the writer sends the same batch again.
    assert store.append(sid, "w1", 2, [delta("a"), delta("b")]).last_seq == 3
    assert store.append(sid, "w1", 1, [START]).last_seq == 3
    assert store.redis.xlen(store.keys.events(sid)) == 3


def test_a_retried_terminal_write_succeeds(store, sid):
    store.leases.acquire(sid, 30, "w1")  # seq 1: start
    done = [(EventType.DONE, {"finish_reason": "stop", "usage": None})]
    store.append(sid, "w1", 2, done)
    assert store.append(sid, "w1", 2, done).last_seq == 2


def test_an_append_never_claims_a_stream(store, sid):
    # Only a lease claims (Leases.acquire): a writer without one is refused.
    with pytest.raises(StreamClosedError):
        store.append(sid, "w1", 1, [START])
    assert list(store.read(sid, 0)) == [] and store.meta(sid).status == "queued"


def test_only_the_claiming_writer_may_write(store, sid):
    store.leases.acquire(sid, 30, "w1")
    assert not store.leases.acquire(sid, 30, "w2").taken
    with pytest.raises(StreamClosedError):
        store.append(sid, "w2", 1, [START])
    with pytest.raises(StreamClosedError):
        store.append(sid, "w2", 2, [delta("x")])
    with pytest.raises(StreamClosedError):  # a gap is refused too
        store.append(sid, "w1", 5, [delta("x")])
    assert store.redis.xlen(store.keys.events(sid)) == 1


def test_nothing_follows_a_terminal_event(store, sid):
    store.leases.acquire(sid, 30, "w1")  # seq 1: start
    store.append(sid, "w1", 2, [(EventType.ERROR, {"code": "upstream_error", "message": "boom"})])
    with pytest.raises(StreamClosedError):
        store.append(sid, "w1", 3, [delta("late")])
    snap = snapshot(store, sid)
    assert snap["status"] == "error" and snap["error"] == {"code": "upstream_error", "message": "boom"}


def test_writes_to_a_missing_stream_raise_not_found(store):
    with pytest.raises(StreamNotFoundError):
        store.append(new_stream_id(), "w1", 1, [START])
    with pytest.raises(StreamNotFoundError):
        store.leases.acquire(new_stream_id(), 30, "w1")
    with pytest.raises(StreamNotFoundError):
        store.meta(new_stream_id())
    with pytest.raises(StreamNotFoundError):
        store.cancel(new_stream_id())


def test_append_many_reports_each_outcome_on_its_own(store, sid):
    store.leases.acquire(sid, 30, "w1")  # seq 1: start
    other = new_stream_id()
    store.create(other, REQUEST)
    store.leases.acquire(other, 30, "w2")
    outcomes = store.append_many([
        AppendRequest(sid, "w1", 2, [delta("a")]),
        AppendRequest(other, "intruder", 2, [delta("x")]),
        AppendRequest(new_stream_id(), "w3", 1, [delta("y")]),
        AppendRequest(sid, "w1", 3, [delta("b"), (EventType.DONE, {"finish_reason": "stop", "usage": None})]),
    ])
    assert outcomes[0].last_seq == 2 and isinstance(outcomes[1], StreamClosedError)
    assert isinstance(outcomes[2], StreamNotFoundError) and outcomes[3].last_seq == 4
    assert [e.type for e in store.read(sid, 0)] == [b"start", b"delta", b"delta", b"done"]
    assert store.meta(sid).status == "done" and store.redis.xlen(store.keys.events(other)) == 1


def test_a_queued_stream_no_worker_holds_can_be_failed(store, sid):
    assert store.fail(sid, "worker_lost", "no worker could start the answer")
    [event] = store.read(sid, 0)
    assert (event.type, event.fields) == (b"error", {"code": "worker_lost",
                                                     "message": "no worker could start the answer"})
    assert snapshot(store, sid)["error"] == {"code": "worker_lost", "message": "no worker could start the answer"}
    assert not store.fail(sid, "worker_lost", "again")  # ended: nothing changes
    leased = new_stream_id()
    store.create(leased, REQUEST)
    assert store.leases.acquire(leased, 30).taken
    assert not store.fail(leased, "worker_lost", "a worker has it") and list(store.read(leased, 0)) == []
    with pytest.raises(StreamNotFoundError):
        store.fail(new_stream_id(), "worker_lost", "gone")


def test_cancel_of_a_queued_stream_ends_it_at_once(store, sid):
    assert store.cancel(sid) is StreamStatus.CANCELLED
    assert [e.type for e in store.read(sid, 0)] == [b"cancelled"]
    # The worker that dequeues it later may not start it.
    assert not store.leases.acquire(sid, 30, "w1").taken
    assert store.cancel(sid) is StreamStatus.CANCELLED


def test_cancel_of_a_running_stream_flags_and_publishes_to_its_worker(store, sid, pubsub_factory):
    # The worker that took the lease named its channel; the cancel goes there alone.
    channel = store.keys.control_channel("worker-1")
    worker = StreamStore(store.redis, store.keys, store.ttl, control=channel)
    pubsub = pubsub_factory(node_of(store.redis, channel)).pubsub()
    pubsub.ssubscribe(channel)
    assert next_message(pubsub)["type"] == "ssubscribe"
    assert worker.leases.acquire(sid, 30, "w1").claimed
    assert store.cancel(sid) is StreamStatus.RUNNING
    assert next_message(pubsub)["data"] == sid.encode()
    assert store.append(sid, "w1", 2, [delta("a")]).cancel_requested
    pubsub.close()


def test_cancel_never_rewrites_an_ended_stream(store, sid):
    store.leases.acquire(sid, 30, "w1")  # seq 1: start
    store.append(sid, "w1", 2, [(EventType.DONE, {"finish_reason": "stop", "usage": None})])
    assert store.cancel(sid) is StreamStatus.DONE
    assert store.meta(sid).status == "done"


def test_read_pages_through_long_streams_and_honours_bounds(store, sid):
    store.leases.acquire(sid, 30, "w1")  # seq 1: start
    n = PAGE + 5
    store.append(sid, "w1", 2, [delta(str(i)) for i in range(n)])
    assert [e.seq for e in store.read(sid, 0)] == list(range(1, n + 2))
    assert [e.seq for e in store.read(sid, 10, upto=13)] == [11, 12, 13]
    assert list(store.read(sid, n + 1)) == []


def test_leases_renew_and_fence(store, sid):
    assert store.leases.acquire(sid, 30).taken
    store.leases.acquire(sid, 30, "w1")  # seq 1: start
    assert store.leases.renew({sid: "w1"}, 30) == []
    assert store.leases.renew({sid: "w2"}, 30) == [sid]
    assert store.leases.expired() == []
    assert store.leases.reclaim(sid, "worker_lost", 3) == ("alive", 0)


def test_an_expired_lease_is_requeued_then_failed_when_attempts_run_out(store, sid):
    for attempt in (1, 2):
        lease = store.leases.acquire(sid, 0, f"w{attempt}")
        assert lease.claim[0] is (EventType.START if attempt == 1 else EventType.RESET)
        assert store.leases.expired() == [sid]
        assert store.leases.reclaim(sid, "worker_lost", max_attempts=2)[0] == ("requeue" if attempt == 1 else "failed")
    snap = snapshot(store, sid)
    assert snap["status"] == "error" and snap["error"]["code"] == "worker_lost"
    assert store.leases.expired() == [] and store.leases.reclaim(sid, "worker_lost", 2) == ("gone", 0)


def test_a_lost_stream_with_a_pending_cancel_ends_cancelled(store, sid):
    assert store.leases.acquire(sid, 0, "w1").claimed
    store.cancel(sid)
    assert store.leases.reclaim(sid, "worker_lost", 3) == ("cancelled", 1)
    assert [e.type for e in store.read(sid, 0)] == [b"start", b"cancelled"]


def test_a_worker_lost_before_its_first_write_is_requeued_without_an_attempt(store, sid):
    assert store.leases.acquire(sid, 0).taken
    assert store.leases.reclaim(sid, "worker_lost", 3) == ("requeue", 1)
    assert store.meta(sid).status == "queued"
    # A second reaper racing the first finds nothing left to do.
    assert store.leases.reclaim(sid, "worker_lost", 3) == ("gone", 0)


def test_a_forced_hand_over_ignores_the_lease_time(store, sid):
    assert store.leases.acquire(sid, 60, "w1").claimed
    assert store.leases.reclaim(sid, "worker_shutdown", 3, force=True) == ("requeue", 2)


def test_acquiring_a_lease_returns_the_stream_as_it_was(store, sid):
    lease = store.leases.acquire(sid, 30)
    assert lease.taken and lease.meta.status == "queued" and json.loads(lease.meta.request) == REQUEST
    assert store.leases.expired() == [] and store.redis.zscore(store.keys.leases(sid), sid) is not None
    # Taken already: a second worker gets the metadata and no lease.
    store.leases.acquire(sid, 30, "w1")
    second = store.leases.acquire(sid, 30)
    assert not second.taken and second.meta.status == "running"
    with pytest.raises(StreamNotFoundError):
        store.leases.acquire(new_stream_id(), 30)


def test_pipelined_scripts_survive_redis_losing_them(store, sid):
    # Both calls go by SHA; after a restart (here SCRIPT FLUSH) Redis answers NOSCRIPT.
    store.redis.script_flush()
    assert store.leases.acquire(sid, 30, "w1").claimed
    store.redis.script_flush()
    assert store.append_many([AppendRequest(sid, "w1", 2, [delta("a")])])[0].last_seq == 2


def test_a_writers_lease_on_a_fresh_stream_writes_its_start(store, sid):
    lease = store.leases.acquire(sid, 30, writer="w1")
    assert lease.taken and lease.claimed and lease.meta.last_seq == 0
    [start] = store.read(sid, 0)
    created = int(float(store.meta(sid).created_at))  # the second the gateway recorded it
    assert (start.seq, start.type, json.loads(start.data)) == (1, b"start", {"id": sid, "model": "m", "created": created})
    meta = store.meta(sid)
    assert (meta.status, meta.writer, meta.last_seq) == ("running", "w1", 1) and meta.started_at is not None
    # The stream is the writer's: its next append goes on, another writer's is refused.
    assert store.append(sid, "w1", 2, [delta("a")]).last_seq == 2
    with pytest.raises(StreamClosedError):
        store.append(sid, "w2", 3, [delta("b")])
    # A second worker gets no lease and writes nothing.
    second = store.leases.acquire(sid, 30, writer="w2")
    assert not second.taken and not second.claimed and [e.seq for e in store.read(sid, 0)] == [1, 2]


def test_a_rerun_lease_claims_the_stream_with_its_reset(store, sid):
    assert store.leases.acquire(sid, 0, writer="w1").claimed
    assert store.leases.reclaim(sid, "worker_lost", 3) == ("requeue", 2)
    lease = store.leases.acquire(sid, 30, writer="w2")
    reset = (EventType.RESET, {"attempt": 2, "reason": "worker_lost"})
    assert lease.claimed and lease.meta.last_seq == 1 and lease.claim == reset
    [_, written] = store.read(sid, 0)
    # Stored as spool's own encoder would have written it.
    assert (written.seq, written.type, written.data) == (2, b"reset", encode_data(reset[1]).encode())
    meta = store.meta(sid)
    assert (meta.status, meta.writer, meta.last_seq, meta.attempt) == ("running", "w2", 2, 2)
    assert store.append(sid, "w2", 3, [delta("again")]).last_seq == 3


def test_a_stream_recorded_without_its_start_event_is_started_from_its_metadata(store, sid):
    # As recorded by a gateway from before the gateway stored `start` (a rolling deploy).
    store.redis.hdel(store.keys.meta(sid), "start_data")
    lease = store.leases.acquire(sid, 30, writer="w1")
    created = store.meta(sid).created_at
    [start] = store.read(sid, 0)
    assert lease.claimed and start.data == encode_data(start_data(sid, "m", created)).encode()
    assert store.meta(sid).status == "running"
