"""The OpenAI-compatible routes on fakeredis: validation, errors and models."""

from __future__ import annotations

import json

import fakeredis
import pytest

ASK = {"model": "m1", "messages": [{"role": "user", "content": "hi"}]}


@pytest.fixture
def redis_client():
    return fakeredis.FakeRedis()


@pytest.fixture
def app(make_app, redis_client):
    return make_app(redis_client=redis_client, models="m1, m2")


@pytest.fixture
def client(app):
    return app.test_client()


def queued(app) -> int:
    return app.extensions["spool"].queue.count


def test_models_lists_spool_models(client):
    body = client.get("/v1/models").get_json()
    assert body["object"] == "list" and [m["id"] for m in body["data"]] == ["m1", "m2"]


def test_models_defaults_to_the_default_model(make_app):
    app = make_app(default_model="only")
    assert [m["id"] for m in app.test_client().get("/v1/models").get_json()["data"]] == ["only"]


@pytest.mark.parametrize("body,status,param", [
    ({**ASK, "temperature": 3}, 400, "temperature"),
    ({**ASK, "messages": []}, 400, "messages"),
    ({**ASK, "messages": [{"role": "robot", "content": "x"}]}, 400, "messages[0].role"),
    ({**ASK, "tools": [{"type": "retrieval"}]}, 400, "tools[0].type"),
    ({**ASK, "n": 2}, 400, "n"),
    ({**ASK, "stream": "yes"}, 400, "stream"),
    ({**ASK, "stream_options": {"include_usage": "y"}}, 400, "stream_options.include_usage"),
    ({**ASK, "model": "m3"}, 404, "model"),
])
def test_bad_requests_get_openai_errors_and_enqueue_nothing(app, client, body, status, param):
    response = client.post("/v1/chat/completions", json=body)
    assert response.status_code == status
    error = response.get_json()["error"]
    assert set(error) == {"message", "type", "param", "code"}
    assert error["param"] == param and error["type"] == "invalid_request_error"
    assert queued(app) == 0


def test_body_errors_use_the_openai_shape(app, client):
    response = client.post("/v1/chat/completions", data="{", content_type="application/json")
    assert response.status_code == 400 and response.get_json()["error"]["code"] == "invalid_json"
    response = client.post("/v1/chat/completions", data="x", content_type="text/plain")
    assert response.status_code == 415 and response.get_json()["error"]["type"] == "invalid_request_error"
    assert queued(app) == 0


def test_openai_fields_are_kept_as_sent(app, client, redis_client, prefix):
    messages = [{"role": "developer", "content": [{"type": "text", "text": "be "}, {"type": "text", "text": "brief"}]},
                {"role": "user", "content": "hi", "name": "ann"}]
    body = {"model": "m2", "user": "u", "max_completion_tokens": 5, "messages": messages, "stream": True}
    response = client.post("/v1/chat/completions", json=body, buffered=False)
    stream_id = response.headers["X-Stream-Id"]
    response.close()
    stored = json.loads(app.extensions["spool"].store.meta(stream_id).request)
    # developer stays developer, max_completion_tokens is not rewritten, name is kept.
    assert stored == {"model": "m2", "messages": messages, "params": {"user": "u", "max_completion_tokens": 5},
                      "request_id": stored["request_id"]}
    assert queued(app) == 1


def test_events_route_accepts_the_openai_format_and_rejects_others(client):
    response = client.get("/v1/streams/" + "A" * 22 + "/events?format=xml")
    assert response.status_code == 400 and "openai" in response.get_json()["error"]["message"]


def test_request_id_is_echoed_or_made(client):
    assert client.get("/healthz", headers={"X-Request-ID": "abc-1"}).headers["X-Request-ID"] == "abc-1"
    assert len(client.get("/healthz").headers["X-Request-ID"]) == 32


def test_readyz_without_workers_is_503(client):
    response = client.get("/readyz")
    assert response.status_code == 503 and response.get_json()["error"]["code"] == "no_workers"


def test_metrics_are_exposed(client):
    client.post("/v1/chat/completions", json={**ASK, "temperature": 9})
    text = client.get("/metrics").get_data(as_text=True)
    assert "spool_streams_created_total" in text and "spool_queue_depth" in text
