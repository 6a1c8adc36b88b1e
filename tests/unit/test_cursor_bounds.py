"""A resume cursor past a live stream's end by more than any failover explains
is refused, and a follower whose cursor is past a terminal event it then sees
ends instead of idling forever."""

from __future__ import annotations

import pytest

from spool.events import EventType
from spool.keys import new_stream_id
from spool.streams import FAILOVER_SEQ_MARGIN
from spool.tail import events

CHAT = {"messages": [{"role": "user", "content": "hi"}], "model": "m"}


@pytest.fixture
def app(make_app):
    return make_app()


def test_cursor_past_a_live_streams_end_beyond_any_failover_is_400(app):
    # Up to FAILOVER_SEQ_MARGIN past the end is a resume after a failover
    # (tests/unit/test_failover_resume.py); further is no seq anyone served.
    client = app.test_client()
    body = client.post("/v1/streams", json=CHAT).get_json()
    beyond = str(FAILOVER_SEQ_MARGIN + 1)
    for query, headers in [(f"?after={beyond}", {}), ("", {"Last-Event-ID": beyond})]:
        response = client.get(body["events_url"] + query, headers=headers)
        assert response.status_code == 400
        assert response.get_json()["error"]["code"] == "invalid_cursor"
    assert app.extensions["spool"].hub.followed == 0


def test_cursor_at_a_live_streams_end_is_followed(app):
    client = app.test_client()
    body = client.post("/v1/streams", json=CHAT).get_json()
    response = client.get(body["events_url"] + "?after=0", buffered=False)
    assert response.status_code == 200
    response.close()


def test_follower_past_the_terminal_event_ends(store, hub):
    sid = new_stream_id()
    store.create(sid, CHAT)
    store.leases.acquire(sid, 30, "w")  # seq 1: start
    # Another follower keeps the hub's cursor at seq 1; this one raced past the
    # end (the gateway checked seq 5 against a meta read before the stream ended).
    other = events(store, hub, sid, after=1, idle_timeout=0.2)
    assert next(other) is None  # subscribed and idle
    late = events(store, hub, sid, after=5, idle_timeout=0.2)
    assert next(late) is None
    store.append(sid, "w", 2, [(EventType.DONE, {"finish_reason": "stop", "usage": None})])
    assert [e.seq for e in other if e is not None] == [2]
    # Without the fix this would yield heartbeats (None) forever.
    assert next(late, "ended") == "ended"
