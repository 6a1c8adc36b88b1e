"""The gateway's routes on fakeredis, through Flask's test client."""

from __future__ import annotations

import json

import fakeredis
import pytest

from spool.decoders import NDJSONDecoder, SSEDecoder
from spool.events import EventType

CHAT = {"messages": [{"role": "user", "content": "hi"}]}


@pytest.fixture
def redis_client():
    return fakeredis.FakeRedis()


@pytest.fixture
def app(make_app, redis_client):
    return make_app(redis_client=redis_client, max_body_bytes=2000)


@pytest.fixture
def client(app):
    return app.test_client()


@pytest.fixture
def services(app):
    return app.extensions["spool"]


def finished_stream(services, text_parts=("Hel", "lo")) -> str:
    """A stream written to the end as a worker would."""
    from spool.keys import new_stream_id

    sid = new_stream_id()
    services.store.create(sid, {**CHAT, "model": "m"})
    services.store.leases.acquire(sid, 30, "w")  # seq 1: start
    events = [(EventType.DELTA, {"text": t}) for t in text_parts]
    events += [(EventType.DONE, {"finish_reason": "stop", "usage": None})]
    services.store.append(sid, "w", 2, events)
    return sid


def ndjson_events(body: bytes) -> list[dict]:
    """The events of an NDJSON body, heartbeats left out."""
    return [obj for obj in NDJSONDecoder().feed(body) if obj["type"] != "heartbeat"]


def error_of(response) -> tuple[int, str]:
    assert response.is_json
    return response.status_code, response.get_json()["error"]["code"]


def test_post_without_stream_accept_is_queued_and_enqueued(client, services):
    response = client.post("/v1/streams", json=CHAT)
    assert response.status_code == 202
    body = response.get_json()
    assert body["status"] == "queued"
    assert body["events_url"] == f"/v1/streams/{body['id']}/events"
    assert services.queue.job_ids == [body["id"]]
    assert services.store.meta(body["id"]).model == "gpt-4o-mini"


@pytest.mark.parametrize(
    ("kwargs", "expected"),
    [
        ({"data": "{nope", "content_type": "application/json"}, (400, "invalid_json")),
        ({"data": "hi", "content_type": "text/plain"}, (415, "unsupported_media_type")),
        ({"json": {"messages": [{"role": "user", "content": "x" * 3000}]}}, (413, "payload_too_large")),
        ({"json": {"messages": []}}, (422, "invalid_request")),
        ({"json": [1, 2]}, (422, "invalid_request")),
        ({"json": {"messages": [{"role": "wizard", "content": "x"}]}}, (422, "invalid_request")),
        ({"json": {"messages": [{"role": "user", "content": 5}]}}, (422, "invalid_request")),
        ({"json": {**CHAT, "temperature": 3}}, (422, "invalid_request")),
        ({"json": {**CHAT, "temperature": True}}, (422, "invalid_request")),
        ({"json": {**CHAT, "max_tokens": 0}}, (422, "invalid_request")),
        ({"json": {**CHAT, "max_tokens": 10**9}}, (422, "invalid_request")),
        ({"json": {**CHAT, "model": ""}}, (422, "invalid_request")),
        ({"json": {**CHAT, "stream": True}}, (422, "invalid_request")),
    ],
)
def test_bad_input_gets_a_json_error_and_changes_nothing(client, services, redis_client, kwargs, expected):
    response = client.post("/v1/streams", **kwargs)
    assert error_of(response) == expected
    assert services.queue.count == 0
    assert redis_client.dbsize() == 0


def test_replay_of_a_finished_stream_in_ndjson_and_sse(client, services):
    sid = finished_stream(services)
    response = client.get(f"/v1/streams/{sid}/events")
    assert response.headers["X-Stream-Id"] == sid
    assert response.headers["Cache-Control"] == "no-cache" and response.headers["X-Accel-Buffering"] == "no"
    assert response.data.startswith(b'{"type":"heartbeat"}\n')
    events = ndjson_events(response.data)
    assert [e["seq"] for e in events] == [1, 2, 3, 4]
    assert "".join(e.get("text", "") for e in events) == "Hello"

    sse = client.get(f"/v1/streams/{sid}/events", headers={"Accept": "text/event-stream"})
    assert sse.mimetype == "text/event-stream"
    messages = SSEDecoder().feed(sse.data)
    assert [(m.id, m.event) for m in messages] == [("1", "start"), ("2", "delta"), ("3", "delta"), ("4", "done")]


@pytest.mark.parametrize(
    ("query", "headers", "expected"),
    [
        ("?after=2", {}, [3, 4]),
        ("", {"Last-Event-ID": "3"}, [4]),
        ("?after=1", {"Last-Event-ID": "3"}, [2, 3, 4]),
        ("?after=4", {}, []),
        ("?format=sse&after=2", {}, [3, 4]),
    ],
)
def test_resume_points(client, services, query, headers, expected):
    sid = finished_stream(services)
    response = client.get(f"/v1/streams/{sid}/events{query}", headers=headers)
    if "format=sse" in query:
        got = [int(m.id) for m in SSEDecoder().feed(response.data)]
    else:
        got = [e["seq"] for e in ndjson_events(response.data)]
    assert got == expected


@pytest.mark.parametrize("query,headers", [("?after=-1", {}), ("?after=x", {}), ("", {"Last-Event-ID": "1.5"})])
def test_bad_cursor_is_400(client, services, query, headers):
    sid = finished_stream(services)
    assert error_of(client.get(f"/v1/streams/{sid}/events{query}", headers=headers)) == (400, "invalid_cursor")


def test_bad_format_is_400(client, services):
    sid = finished_stream(services)
    assert error_of(client.get(f"/v1/streams/{sid}/events?format=xml")) == (400, "invalid_format")


def test_snapshot(client, services):
    sid = finished_stream(services)
    snapshot = client.get(f"/v1/streams/{sid}").get_json()
    assert snapshot["status"] == "done" and snapshot["text"] == "Hello" and snapshot["last_seq"] == 4


@pytest.mark.parametrize("path", ["/v1/streams/{}", "/v1/streams/{}/events"])
@pytest.mark.parametrize("sid", ["AAAAAAAAAAAAAAAAAAAAAA", "not-an-id", "..%2F..%2Fx"])
def test_unknown_or_malformed_ids_are_404(client, path, sid):
    assert error_of(client.get(path.format(sid))) == (404, "not_found")


def test_cancel_queued_then_idempotent(client, services):
    sid = client.post("/v1/streams", json=CHAT).get_json()["id"]
    assert client.post(f"/v1/streams/{sid}/cancel").get_json() == {"id": sid, "status": "cancelled"}
    assert client.post(f"/v1/streams/{sid}/cancel").get_json() == {"id": sid, "status": "cancelled"}
    events = ndjson_events(client.get(f"/v1/streams/{sid}/events").data)
    assert events == [{"seq": 1, "type": "cancelled"}]


def test_cancel_of_a_finished_stream_reports_done(client, services):
    sid = finished_stream(services)
    assert client.post(f"/v1/streams/{sid}/cancel").get_json() == {"id": sid, "status": "done"}
    assert error_of(client.post("/v1/streams/AAAAAAAAAAAAAAAAAAAAAA/cancel")) == (404, "not_found")


def test_unknown_routes_and_methods_are_json(client):
    assert error_of(client.get("/v1/nothing")) == (404, "not_found")
    assert error_of(client.delete("/v1/streams")) == (405, "method_not_allowed")


def test_redis_outage_is_503_with_retry_after(make_app):
    import redis

    app = make_app(redis_client=redis.Redis(port=1, socket_connect_timeout=0.2))
    response = app.test_client().post("/v1/streams", json=CHAT)
    assert error_of(response) == (503, "unavailable")
    assert response.headers["Retry-After"]


def test_healthz(client):
    assert client.get("/healthz").get_json() == {"status": "ok"}


def test_ndjson_post_streams_live(client, services):
    # No worker here: write as one would, while the response is being read.
    response = client.post("/v1/streams", json=CHAT, headers={"Accept": "application/x-ndjson"}, buffered=False)
    sid = response.headers["X-Stream-Id"]
    body = iter(response.response)
    # First a heartbeat, so the headers reach a real client before any event,
    # then the place in the queue the stream was given.
    assert json.loads(next(body)) == {"type": "heartbeat"}
    services.store.leases.acquire(sid, 30, "w")  # seq 1: start
    assert json.loads(next(body)) == {"type": "queued", "queue_position": 1}
    assert json.loads(next(body))["type"] == "start"
    services.store.append(sid, "w", 2, [(EventType.CANCELLED, {})])
    assert json.loads(next(body)) == {"seq": 2, "type": "cancelled"}
    assert list(body) == []


def test_idempotency_key_returns_the_same_stream(client, services):
    headers = {"Idempotency-Key": "order-42"}
    first = client.post("/v1/streams", json=CHAT, headers=headers)
    again = client.post("/v1/streams", json=CHAT, headers=headers)
    assert first.status_code == again.status_code == 202
    assert again.get_json()["id"] == first.get_json()["id"]
    assert again.headers["Idempotent-Replayed"] == "true"
    assert services.queue.count == 1
    other = client.post("/v1/streams", json=CHAT, headers={"Idempotency-Key": "order-43"})
    assert other.get_json()["id"] != first.get_json()["id"]


def test_idempotency_key_reused_for_another_body_is_refused(client, services):
    client.post("/v1/streams", json=CHAT, headers={"Idempotency-Key": "k"})
    different = {"messages": [{"role": "user", "content": "something else"}]}
    response = client.post("/v1/streams", json=different, headers={"Idempotency-Key": "k"})
    assert error_of(response) == (422, "idempotency_key_reused")
    assert services.queue.count == 1


def test_malformed_idempotency_key_is_400(client, services):
    response = client.post("/v1/streams", json=CHAT, headers={"Idempotency-Key": "x" * 300})
    assert error_of(response) == (400, "invalid_idempotency_key")
    assert services.queue.count == 0


def test_queued_streams_report_their_place_in_the_queue(client, services):
    ids = [client.post("/v1/streams", json=CHAT).get_json()["id"] for _ in range(3)]
    assert [client.get(f"/v1/streams/{i}").get_json()["queue_position"] for i in ids] == [1, 2, 3]
    response = client.get(f"/v1/streams/{ids[2]}/events", buffered=False)
    body = iter(response.response)
    assert json.loads(next(body)) == {"type": "heartbeat"}
    assert json.loads(next(body)) == {"type": "queued", "queue_position": 3}
    response.close()


def test_a_streamed_post_reports_its_place_without_asking_again(client, services, monkeypatch):
    # Queueing told the gateway the stream's place; the follow loop does not
    # read the stream's status and search the queue for it once more.
    for _ in range(2):
        client.post("/v1/streams", json=CHAT)
    asked = []
    position = services.queue.get_job_position
    monkeypatch.setattr(services.queue, "get_job_position", lambda job: asked.append(job) or position(job))
    response = client.post("/v1/streams", json=CHAT, headers={"Accept": "application/x-ndjson"}, buffered=False)
    body = iter(response.response)
    assert json.loads(next(body)) == {"type": "heartbeat"}
    assert json.loads(next(body)) == {"type": "queued", "queue_position": 3}
    response.close()
    assert asked == []


def test_formats_without_a_queued_line_never_search_the_queue(client, services, monkeypatch):
    monkeypatch.setattr(services.queue, "get_job_position", lambda job: pytest.fail("searched the queue"))
    body = {**CHAT, "model": "gpt-4o-mini", "stream": True}
    response = client.post("/v1/chat/completions", json=body, buffered=False)
    assert response.status_code == 200
    next(iter(response.response))
    response.close()


def test_a_new_stream_is_recorded_and_enqueued_in_one_round_trip(client, services, redis_client):
    # Nothing on the worker's side can start before this reaches Redis.
    client.post("/v1/streams", json=CHAT)  # the first request also sets up the read-token secret
    taken = []
    get_connection = redis_client.connection_pool.get_connection
    redis_client.connection_pool.get_connection = lambda *a, **kw: taken.append(1) or get_connection(*a, **kw)
    response = client.post("/v1/streams", json=CHAT)
    assert response.status_code == 202
    assert len(taken) == 1
    assert services.queue.job_ids[-1] == response.get_json()["id"]
    assert services.store.meta(response.get_json()["id"]).status == "queued"
