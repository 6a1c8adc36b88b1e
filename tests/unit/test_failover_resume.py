"""A resume right after a failover: the promoted replica's `last_seq` is behind
the seq the client read; the cursor is followed (gateway/cursor.py), and once
the writer restores the lost events the client gets exactly the ones after
its cursor. Another follower of the same stream, behind, misses nothing."""

from __future__ import annotations

import json
import threading

import fakeredis
import pytest

from bench.redis_topologies import wait_until
from gateway import create_app
from gateway.cursor import resume_point
from gateway.errors import ApiError
from spool.events import EventType
from spool.streams import FAILOVER_SEQ_MARGIN, StreamMeta
from tests.unit.test_failover_contract import delta, lose_tail
from tests.unit.test_ui_wire import KEY_A, auth, chunks_of, ui_body

CHAT = {"messages": [{"role": "user", "content": "hi"}], "model": "m"}
DONE = (EventType.DONE, {"finish_reason": "stop", "usage": None})


@pytest.fixture
def app(prefix):
    app = create_app({"key_prefix": prefix, "queue": prefix}, redis_client=fakeredis.FakeRedis())
    yield app
    app.extensions["spool"].hub.stop()


class Reader:
    """Reads a streaming response in a thread of its own."""

    def __init__(self, response) -> None:
        assert response.status_code == 200, response.data
        self.body = b""
        self._thread = threading.Thread(target=self._read, args=(response,), daemon=True)
        self._thread.start()

    def _read(self, response) -> None:
        try:
            for chunk in response.response:
                self.body += chunk
        finally:
            response.close()

    @property
    def events(self) -> list[dict]:
        """The NDJSON events read so far."""
        return [e for e in map(json.loads, self.body.splitlines()) if "seq" in e]

    def seqs(self) -> list[int]:
        return [e["seq"] for e in self.events]

    def join(self) -> bytes:
        self._thread.join(timeout=10)
        assert not self._thread.is_alive(), "the follower did not end"
        return self.body


def lease_and_lose(store, sid: str, written: list[tuple[int, list]], keep: int) -> None:
    """The writer `w` takes the stream (seq 1: start) and writes `written`;
    then a failover leaves only seqs <= keep."""
    assert store.leases.acquire(sid, 30, writer="w").claimed
    for seq, events in written:
        store.append(sid, "w", seq, events)
    lose_tail(store, sid, keep, {})


def test_a_resume_past_a_failed_over_end_gets_exactly_the_events_after_its_cursor(app):
    store, hub = app.extensions["spool"].store, app.extensions["spool"].hub
    client = app.test_client()
    sid = client.post("/v1/streams", json=CHAT).get_json()["id"]
    # A client read up to seq 5; the promoted replica ends at seq 3.
    lease_and_lose(store, sid, [(2, [delta("a"), delta("b")]), (4, [delta("c"), delta("d")])], keep=3)
    ahead = Reader(client.get(f"/v1/streams/{sid}/events?after=5", buffered=False))
    wait_until(lambda: hub.followed == 1, 5, "the resume to follow the stream")
    # A follower behind joins the same shared read: it must get seqs 4 and 5.
    behind = Reader(client.get(f"/v1/streams/{sid}/events?after=1", buffered=False))
    wait_until(lambda: behind.seqs() == [2, 3], 5, "the follower behind to replay seqs 2-3")
    # The writer's next append restores seqs 4-5 (same content), then its own.
    store.append(sid, "w", 6, [delta("e"), DONE])
    ahead.join()
    behind.join()
    assert ahead.seqs() == [6, 7] and [e.get("text") for e in ahead.events] == ["e", None]
    assert behind.seqs() == [2, 3, 4, 5, 6, 7]
    assert "".join(e.get("text", "") for e in behind.events) == "abcde"


def test_a_ui_resume_past_a_failed_over_end_gets_only_the_rest(prefix):
    # The AI SDK route takes the same rule; the restored events up to the
    # cursor are read as history (the open text part), not sent.
    app = create_app({"key_prefix": prefix, "queue": prefix, "api_keys": KEY_A, "secret_key": "s" * 32},
                     redis_client=fakeredis.FakeRedis())
    try:
        store, hub = app.extensions["spool"].store, app.extensions["spool"].hub
        client = app.test_client()
        posted = client.post("/v1/ui/chat", json=ui_body("failover"), headers=auth())
        posted.close()
        stream_id = posted.headers["X-Stream-Id"]
        lease_and_lose(store, stream_id, [(2, [delta("a")]), (3, [delta("b")])], keep=2)
        resumed = Reader(client.get("/v1/ui/chat/failover/stream", headers={**auth(), "Last-Event-ID": "3"},
                                    buffered=False))
        wait_until(lambda: hub.followed == 1, 5, "the resume to follow the stream")
        store.append(stream_id, "w", 4, [delta("c"), DONE])
        chunks = chunks_of(resumed.join())
        assert [c["delta"] for c in chunks if c["type"] == "text-delta"] == ["c"]
        assert [c["type"] for c in chunks] == ["text-delta", "text-end", "finish-step", "finish"]
    finally:
        app.extensions["spool"].hub.stop()


def meta(status: str, last_seq: int) -> StreamMeta:
    return StreamMeta.from_hash({b"status": status.encode(), b"last_seq": str(last_seq).encode()})


@pytest.mark.parametrize("status,last_seq,after,expected", [
    ("running", 40, 50, (50, 40, False)),                          # behind after a failover: followed from 40
    ("queued", 0, 7, (7, 0, False)),                               # the replica lacks even the lease
    ("queued", 40 + FAILOVER_SEQ_MARGIN, 50, (50, 50, False)),     # requeued past the margin: as before
    ("running", 40, 40 + FAILOVER_SEQ_MARGIN, (40 + FAILOVER_SEQ_MARGIN, 40, False)),
    ("done", 40, 40, (40, 40, True)),                              # at the end of an ended stream
    ("done", 40, 99, (99, 99, True)),                              # past it: answered at once, as before
    ("done", 40, 12, (12, 12, False)),
])
def test_the_cursor_rule(status, last_seq, after, expected):
    point = resume_point(after, meta(status, last_seq))
    assert (point.after, point.start, point.ended) == expected


def test_a_cursor_past_any_failover_is_refused():
    with pytest.raises(ApiError) as refused:
        resume_point(41 + FAILOVER_SEQ_MARGIN, meta("running", 40))
    assert (refused.value.status, refused.value.code) == (400, "invalid_cursor")
