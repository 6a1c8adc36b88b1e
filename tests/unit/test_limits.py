"""Rate, concurrency and queue-depth limits (gateway/limits.py) and the input
rules of gateway/validation.py, on fakeredis and real Redis."""

from __future__ import annotations

import pytest

from spool.events import EventType
from spool.keys import Keys

CHAT = {"messages": [{"role": "user", "content": "hi"}]}
KEY = "limits-key-0123456789-abcdefghijklmn"
OTHER_KEY = "other-key-0123456789-abcdefghijklmno"
AUTH = {"Authorization": f"Bearer {KEY}"}


@pytest.fixture
def make_client(make_app, redis_client, prefix):
    def make(**config):
        return make_app(redis_client=redis_client, api_keys=f"{KEY},{OTHER_KEY}",
                        secret_key="limits-secret-0123456789-abcdefghij", **config).test_client()

    yield make
    redis_client.delete(f"rq:queue:{prefix}")


def refused(response, status: int, code: str) -> int:
    assert response.status_code == status, response.get_json()
    assert response.get_json()["error"]["code"] == code
    return int(response.headers["Retry-After"])


def test_rate_limit_per_key_answers_429_with_retry_after(make_client):
    client = make_client(rate_limit_per_minute=3)
    for _ in range(3):
        assert client.get("/v1/streams/" + "A" * 22, headers=AUTH).status_code == 404
    retry = refused(client.get("/v1/streams/" + "A" * 22, headers=AUTH), 429, "rate_limited")
    assert 1 <= retry <= 60
    # Another key has its own budget; health checks are not counted.
    assert client.get("/v1/streams/" + "A" * 22, headers={"Authorization": f"Bearer {OTHER_KEY}"}).status_code == 404
    assert client.get("/healthz").status_code == 200


def test_rate_limit_without_keys_is_per_client_ip(make_app, redis_client):
    client = make_app(redis_client=redis_client, rate_limit_per_minute=1).test_client()
    assert client.get("/v1/streams/" + "A" * 22).status_code == 404
    assert client.get("/v1/streams/" + "A" * 22).status_code == 429
    other_ip = client.get("/v1/streams/" + "A" * 22, environ_base={"REMOTE_ADDR": "10.9.8.7"})
    assert other_ip.status_code == 404


def finish(client, sid: str) -> None:
    store = client.application.extensions["spool"].store
    store.leases.acquire(sid, 30, "w")  # seq 1: start
    store.append(sid, "w", 2, [(EventType.DONE, {"finish_reason": "stop", "usage": None})])


def test_concurrent_streams_are_limited_and_released_when_they_end(make_client, prefix, redis_client):
    client = make_client(max_concurrent_streams=2)
    first = client.post("/v1/streams", json=CHAT, headers=AUTH).get_json()
    client.post("/v1/streams", json=CHAT, headers=AUTH)
    refused(client.post("/v1/streams", json=CHAT, headers=AUTH), 429, "too_many_streams")
    # Another key is not affected.
    assert client.post("/v1/streams", json=CHAT, headers={"Authorization": f"Bearer {OTHER_KEY}"}).status_code == 202
    finish(client, first["id"])
    assert client.post("/v1/streams", json=CHAT, headers=AUTH).status_code == 202
    # A cancelled (queued) stream frees its slot too, and an expired one.
    live = redis_client.zrange(Keys(prefix).live_streams(client.application.extensions["spool.access"]
                                                          .owner_for(KEY)), 0, -1)
    assert len(live) == 2
    assert client.post(f"/v1/streams/{live[0].decode()}/cancel", headers=AUTH).status_code == 200
    redis_client.delete(Keys(prefix).meta(live[1].decode()))
    assert client.post("/v1/streams", json=CHAT, headers=AUTH).status_code == 202
    assert client.post("/v1/streams", json=CHAT, headers=AUTH).status_code == 202
    refused(client.post("/v1/streams", json=CHAT, headers=AUTH), 429, "too_many_streams")


def test_a_refused_stream_is_not_created(make_client, redis_client, prefix):
    client = make_client(max_concurrent_streams=1)
    client.post("/v1/streams", json=CHAT, headers=AUTH)
    before = set(redis_client.scan_iter(match=f"{prefix}:*"))
    client.post("/v1/streams", json=CHAT, headers=AUTH)
    after = set(redis_client.scan_iter(match=f"{prefix}:*"))
    assert after == before
    assert redis_client.llen(f"rq:queue:{prefix}") == 1


def test_queue_depth_limit_answers_503(make_client, redis_client, prefix):
    client = make_client(max_queue_depth=2)
    assert client.post("/v1/streams", json=CHAT, headers=AUTH).status_code == 202
    assert client.post("/v1/streams", json=CHAT, headers=AUTH).status_code == 202
    refused(client.post("/v1/streams", json=CHAT, headers=AUTH), 503, "queue_full")
    assert redis_client.llen(f"rq:queue:{prefix}") == 2


@pytest.mark.parametrize("body, config, message", [
    ({**CHAT, "model": "gpt-evil"}, {"models": "a,b"}, "model must be one of"),
    ({"messages": [{"role": "user", "content": "x" * 11}]}, {"max_input_chars": 10}, "at most 10"),
    ({"messages": [{"role": "user", "content": "x" * 6}, {"role": "user", "content": "y" * 5}]},
     {"max_input_chars": 10}, "11 characters"),
])
def test_input_rules_answer_422_and_enqueue_nothing(make_client, redis_client, prefix, body, config, message):
    response = make_client(**config).post("/v1/streams", json=body, headers=AUTH)
    assert response.status_code == 422
    assert response.get_json()["error"]["code"] == "invalid_request"
    assert message in response.get_json()["error"]["message"]
    assert redis_client.llen(f"rq:queue:{prefix}") == 0


@pytest.mark.parametrize("body, config", [
    ({**CHAT, "model": "b"}, {"models": "a, b"}),
    (CHAT, {"models": "a"}),  # the default model is always allowed
    ({**CHAT, "model": "anything"}, {}),
    ({"messages": [{"role": "user", "content": "x" * 10}]}, {"max_input_chars": 10}),
])
def test_inputs_within_the_rules_are_accepted(make_client, body, config):
    assert make_client(**config).post("/v1/streams", json=body, headers=AUTH).status_code == 202


@pytest.mark.parametrize("kwargs, status, code", [
    ({"data": "{not json", "content_type": "application/json"}, 400, "invalid_json"),
    ({"data": "{}", "content_type": "text/plain"}, 415, "unsupported_media_type"),
    ({"data": "x" * 3000, "content_type": "application/json"}, 413, "payload_too_large"),
    ({"json": {"messages": []}}, 422, "invalid_request"),
    # Found by the schemathesis run: an unhashable role was a 500.
    ({"json": {"messages": [{"role": {}, "content": ""}]}}, 422, "invalid_request"),
    ({"json": {"messages": [{"role": ["user"], "content": ""}]}}, 422, "invalid_request"),
])
def test_existing_body_rules(make_client, kwargs, status, code):
    response = make_client(max_body_bytes=2000).post("/v1/streams", headers=AUTH, **kwargs)
    assert (response.status_code, response.get_json()["error"]["code"]) == (status, code)
