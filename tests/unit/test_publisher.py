"""Publisher and Flusher: coalesced, pipelined writes and how their failures
reach the generation. On fakeredis; the store's own contract runs on both."""

from __future__ import annotations

import fakeredis
import pytest
import redis

from spool.errors import StreamClosedError
from spool.events import EventType
from spool.keys import Keys, new_stream_id
from spool.streams import StreamStore
from worker.publisher import Flusher, Publisher, RedisOutageError

REQUEST = {"messages": [{"role": "user", "content": "hi"}], "model": "m"}


@pytest.fixture
def store(prefix):
    return StreamStore(fakeredis.FakeRedis(), Keys(prefix), 3600)


def started(store, *, outage_window=30.0) -> Publisher:
    sid = new_stream_id()
    store.create(sid, REQUEST)
    writer = new_stream_id()
    assert store.leases.acquire(sid, 30, writer).claimed  # seq 1: start
    return Publisher(store, sid, writer, first_seq=2, interval=60.0, outage_window=outage_window)


def deltas(store, sid) -> list[str]:
    return [e.data.decode() for e in store.read(sid, 0) if e.type == b"delta"]


def test_the_first_delta_is_written_at_once_and_later_ones_wait_for_the_flusher(store):
    publisher = started(store)
    publisher.delta("a")
    publisher.delta("b")
    publisher.delta("c")
    assert deltas(store, publisher.stream_id) == ['{"text":"a"}']
    flusher = Flusher(store, 60.0)
    flusher.add(publisher)
    assert flusher.flush() == 1
    assert deltas(store, publisher.stream_id) == ['{"text":"a"}', '{"text":"bc"}']
    assert flusher.flush() == 0  # nothing left


def test_one_flush_writes_every_publisher_in_one_round_trip(store, monkeypatch):
    publishers = [started(store) for _ in range(5)]
    flusher = Flusher(store, 60.0)
    for i, publisher in enumerate(publishers):
        publisher.delta("first")
        publisher.delta(f"more {i}")
        flusher.add(publisher)
    pipelines = []
    real_pipeline = store.redis.pipeline
    monkeypatch.setattr(store.redis, "pipeline", lambda *a, **k: pipelines.append(1) or real_pipeline(*a, **k))
    assert flusher.flush() == 5
    assert len(pipelines) == 1
    for i, publisher in enumerate(publishers):
        assert deltas(store, publisher.stream_id)[-1] == f'{{"text":"more {i}"}}'


def test_a_write_the_flusher_could_not_make_is_raised_by_the_generation(store):
    publisher = started(store)
    publisher.delta("a")
    publisher.delta("b")
    # Another worker took the stream over (its lease had expired).
    assert store.leases.reclaim(publisher.stream_id, "worker_lost", 3, force=True)[0] == "requeue"
    flusher = Flusher(store, 60.0)
    flusher.add(publisher)
    flusher.flush()
    with pytest.raises(StreamClosedError):
        publisher.delta("c")
    with pytest.raises(StreamClosedError):
        publisher.finish(EventType.DONE, {"finish_reason": "stop", "usage": None})


def test_a_lost_connection_keeps_the_batch_and_retries_it(store, monkeypatch):
    publisher = started(store)
    publisher.delta("a")
    publisher.delta("b")
    flusher = Flusher(store, 60.0)
    flusher.add(publisher)
    real = store.append_many
    monkeypatch.setattr(store, "append_many", lambda requests: (_ for _ in ()).throw(redis.ConnectionError("down")))
    flusher.flush()
    publisher.delta("c")  # buffered behind the batch in flight; no error yet
    monkeypatch.setattr(store, "append_many", real)
    publisher.finish(EventType.DONE, {"finish_reason": "stop", "usage": None})
    assert deltas(store, publisher.stream_id) == ['{"text":"a"}', '{"text":"b"}', '{"text":"c"}']
    assert [e.seq for e in store.read(publisher.stream_id, 0)] == [1, 2, 3, 4, 5]


def test_an_outage_longer_than_the_window_ends_the_generation(store, monkeypatch):
    publisher = started(store, outage_window=0.0)
    publisher.delta("a")
    publisher.delta("b")
    flusher = Flusher(store, 60.0)
    flusher.add(publisher)
    down = lambda requests: (_ for _ in ()).throw(redis.ConnectionError("down"))  # noqa: E731
    monkeypatch.setattr(store, "append_many", down)
    flusher.flush()  # the first failure starts the outage clock
    publisher._retry_at = 0  # skip the backoff rather than wait it out
    flusher.flush()
    with pytest.raises(RedisOutageError):
        publisher.delta("c")


def events_after_start(store, sid) -> list[tuple[str, str]]:
    return [(e.type.decode(), e.data.decode()) for e in store.read(sid, 0)][1:]


def test_parts_coalesce_like_text_and_a_change_of_kind_keeps_the_order(store):
    publisher = started(store)
    publisher.add(EventType.REASONING, {"text": "a"})  # the first part is written at once
    publisher.add(EventType.REASONING, {"text": "b"})
    publisher.add(EventType.REASONING, {"text": "c"})
    publisher.delta("x")
    publisher.delta("y")
    publisher.add(EventType.LOGPROBS, {"content": []})
    publisher.add(EventType.TOOL_CALL, {"index": 0, "id": "c", "tool_type": "function", "name": "f"})
    publisher.add(EventType.TOOL_CALL_DELTA, {"index": 0, "arguments": '{"a"'})
    publisher.add(EventType.TOOL_CALL_DELTA, {"index": 0, "arguments": ": 1}"})
    publisher.add(EventType.TOOL_CALL_DELTA, {"index": 1, "arguments": "{}"})
    publisher.add(EventType.REFUSAL, {"text": "n"})
    publisher.add(EventType.REFUSAL, {"text": "o"})
    flusher = Flusher(store, 60.0)
    flusher.add(publisher)
    assert flusher.flush() == 1  # everything buffered, in one write
    publisher.finish(EventType.DONE, {"finish_reason": "tool_calls", "usage": None})
    assert events_after_start(store, publisher.stream_id) == [
        ("reasoning", '{"text":"a"}'),
        ("reasoning", '{"text":"bc"}'),
        ("delta", '{"text":"xy"}'),
        ("logprobs", '{"content":[]}'),
        ("tool_call", '{"index":0,"id":"c","tool_type":"function","name":"f"}'),
        ("tool_call_delta", '{"index":0,"arguments":"{\\"a\\": 1}"}'),
        ("tool_call_delta", '{"index":1,"arguments":"{}"}'),
        ("refusal", '{"text":"no"}'),
        ("done", '{"finish_reason":"tool_calls","usage":null}'),
    ]


def test_a_reset_drops_every_unsent_part(store):
    publisher = started(store)
    publisher.add(EventType.REASONING, {"text": "a"})
    publisher.add(EventType.TOOL_CALL, {"index": 0, "id": "c", "tool_type": "function", "name": "f"})
    publisher.delta("x")
    publisher.reset(2, "upstream_truncated")
    publisher.delta("y")
    publisher.finish(EventType.DONE, {"finish_reason": "stop", "usage": None})
    assert [t for t, _ in events_after_start(store, publisher.stream_id)] == ["reasoning", "reset", "delta", "done"]
