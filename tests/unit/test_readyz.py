"""/readyz names the reason, never Redis' own words or address (issues 19, 20)."""

from __future__ import annotations

import pytest
import redis

from gateway import ops_routes


@pytest.fixture
def client(make_app):
    return make_app().test_client()


def test_a_full_redis_is_its_own_reason(client, monkeypatch):
    monkeypatch.setattr(ops_routes, "write_refusal", lambda client, key: "full")
    response = client.get("/readyz")
    assert response.status_code == 503
    assert response.get_json()["error"] == {"code": "redis_full",
                                            "message": "redis full: it refuses writes until memory is freed"}


def test_a_read_only_redis_is_its_own_reason(client, monkeypatch):
    monkeypatch.setattr(ops_routes, "write_refusal", lambda client, key: "readonly")
    assert client.get("/readyz").get_json()["error"]["code"] == "redis_readonly"


def test_an_unreachable_redis_is_named_without_its_address(client, monkeypatch):
    def refuse(client, key):
        raise redis.ConnectionError("Error 111 connecting to redis.internal:6379. Connection refused.")

    monkeypatch.setattr(ops_routes, "write_refusal", refuse)
    response = client.get("/readyz")
    assert response.status_code == 503
    assert response.get_json()["error"] == {"code": "redis_unreachable", "message": "redis unavailable"}
    assert "6379" not in response.get_data(as_text=True)


def test_the_probe_writes_nothing(client, prefix):
    client.get("/readyz")
    assert client.application.extensions["spool"].redis.keys("*readyz*") == []
