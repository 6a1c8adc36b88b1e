"""Hostile input on both APIs: a clear JSON 4xx, never a 500, nothing enqueued;
and one error type rendered in each API's shape (issues 17 and 19)."""

from __future__ import annotations

import pytest
import redis

from gateway.auth import owner_of
from gateway.errors import ApiError, redis_error
from spool.events import EventType
from spool.keys import new_stream_id

KEY = "hostile-key-0123456789-0123456789"
SECRET = "s" * 32
AUTH = {"Authorization": f"Bearer {KEY}"}
NATIVE = "/v1/streams"
OPENAI = "/v1/chat/completions"


@pytest.fixture
def app(make_app):
    return make_app(api_keys=KEY, secret_key=SECRET, max_messages=2)


@pytest.fixture
def client(app):
    return app.test_client()


def post_raw(client, path: str, body: str):
    return client.post(path, data=body.encode("utf-8"), content_type="application/json", headers=AUTH)


def assert_refused(app, response, status: int, code: str, shape: str) -> dict:
    assert response.status_code == status, response.data
    error = response.get_json()["error"]
    assert error["code"] == code
    if shape == "openai":
        assert set(error) == {"message", "type", "param", "code"}
    else:
        assert set(error) == {"code", "message"}
    assert app.extensions["spool"].queue.count == 0
    return error


def a_stream(app) -> str:
    store = app.extensions["spool"].store
    sid = new_stream_id()
    store.create(sid, {"messages": [{"role": "user", "content": "hi"}], "model": "m"}, owner=owner_of(KEY, SECRET))
    store.leases.acquire(sid, 30, "w")  # seq 1: start
    store.append(sid, "w", 2, [(EventType.DELTA, {"text": "a"}), (EventType.DELTA, {"text": "b"})])
    return sid


@pytest.mark.parametrize("fmt", ["ndjson", "sse", "openai"])
@pytest.mark.parametrize("query,headers", [
    ("after=%C2%B2", {}),             # ² : str.isdigit() says yes, int() raises
    ("after=%D9%A3", {}),             # ٣ : int() would read it as 3
    ("", {"Last-Event-ID": "\u00b2".encode().decode("latin-1")}),
    ("after=" + "9" * 5000, {}),      # past int()'s 4,300-digit limit
    ("after=%EF%BC%91", {}),          # a fullwidth 1
])
def test_cursors_take_ascii_digits_only(app, client, fmt, query, headers):
    sid = a_stream(app)
    response = client.get(f"/v1/streams/{sid}/events?format={fmt}&{query}", headers={**AUTH, **headers},
                          buffered=False)  # a cursor read wrongly would follow an unfinished stream forever
    try:
        assert response.status_code == 400
        assert response.get_json()["error"]["code"] == "invalid_cursor"
    finally:
        response.close()


def test_an_ascii_cursor_still_resumes(app, client):
    sid = a_stream(app)
    response = client.get(f"/v1/streams/{sid}/events?format=ndjson&after=2", headers=AUTH, buffered=False)
    assert response.status_code == 200
    response.close()


@pytest.mark.parametrize("path,shape", [(NATIVE, "native"), (OPENAI, "openai")])
@pytest.mark.parametrize("body", [
    '{"messages": [{"role": "user", "content": "a\\ud800b"}]}',
    '{"messages": [{"role": "user", "content": "x"}], "model": "\\udfff"}',
    '{"messages": [{"role": "user", "content": "x"}], "\\ud800": 1}',
])
def test_lone_surrogates_are_400(app, client, path, shape, body):
    assert_refused(app, post_raw(client, path, body), 400, "invalid_json", shape)


def test_a_surrogate_pair_is_one_character_and_accepted(app, client):
    response = post_raw(client, NATIVE, '{"messages": [{"role": "user", "content": "\\ud83d\\ude00"}]}')
    assert response.status_code == 202, response.data


@pytest.mark.parametrize("path,shape", [(NATIVE, "native"), (OPENAI, "openai")])
@pytest.mark.parametrize("depth", [257, 100_000])
def test_deep_nesting_is_a_400_json_error(app, client, path, shape, depth):
    body = '{"messages": ' + "[" * depth + "]" * depth + "}"
    error = assert_refused(app, post_raw(client, path, body), 400, "invalid_json", shape)
    assert "nested" in error["message"]


def test_rate_limited_completions_carry_retry_after(make_app):
    app = make_app(api_keys=KEY, secret_key=SECRET, rate_limit_per_minute=1)
    client = app.test_client()
    client.get("/v1/models", headers=AUTH)
    for path in (OPENAI, NATIVE):
        response = client.post(path, json={"messages": [{"role": "user", "content": "x"}]}, headers=AUTH)
        assert response.status_code == 429
        assert response.get_json()["error"]["code"] == "rate_limited"
        assert int(response.headers["Retry-After"]) >= 1
    assert set(client.post(OPENAI, json={}, headers=AUTH).get_json()["error"]) == {"message", "type", "param",
                                                                                   "code"}


def test_param_names_the_parameter_not_the_first_word(app, client):
    messages = [{"role": "user", "content": "x"}] * 3
    response = client.post(OPENAI, json={"messages": messages}, headers=AUTH)
    assert response.status_code == 400
    assert response.get_json()["error"]["param"] == "messages"
    response = client.post(OPENAI, json={"messages": [{"role": "user", "content": "x"}], "temperature": 9},
                           headers=AUTH)
    assert response.get_json()["error"]["param"] == "temperature"


@pytest.mark.parametrize("path,shape", [(NATIVE, "native"), (OPENAI, "openai")])
def test_unreachable_redis_is_503_with_retry_after_in_each_shape(make_app, path, shape):
    app = make_app(redis_client=redis.Redis(port=1, socket_connect_timeout=0.2))
    response = app.test_client().post(path, json={"messages": [{"role": "user", "content": "x"}]})
    assert response.status_code == 503
    error = response.get_json()["error"]
    assert error["code"] == "unavailable" and "unreachable" in error["message"]
    assert response.headers["Retry-After"] == "2"
    if shape == "openai":
        assert error["type"] == "server_error"


def test_redis_full_is_told_apart_from_unreachable():
    full = redis_error(redis.exceptions.OutOfMemoryError("OOM command not allowed when used memory > 'maxmemory'"))
    gone = redis_error(redis.ConnectionError("refused"))
    assert (full.status, full.code, full.retry_after) == (503, "unavailable", 2)
    assert "full" in full.message and "unreachable" in gone.message


def test_api_error_carries_param_and_retry_after():
    error = ApiError(429, "too_many_streams", "at most 1", param=None, retry_after=0)
    assert (error.status, error.code, error.message, error.param, error.retry_after) == (
        429, "too_many_streams", "at most 1", None, 1)


def test_a_body_that_stops_arriving_is_a_json_400(app, client):
    # Under gunicorn the socket's timeout (SPOOL_GATEWAY_SEND_TIMEOUT) raises
    # in the body read; werkzeug reports it as a client disconnect.
    import io

    class Stalled(io.RawIOBase):
        def readable(self):
            return True

        def readinto(self, buffer):
            raise TimeoutError("timed out")  # what the socket's timeout raises under gunicorn

    environ = {"wsgi.input": Stalled(), "CONTENT_LENGTH": "10", "CONTENT_TYPE": "application/json"}
    response = client.post(NATIVE, headers=AUTH, environ_overrides=environ)
    assert_refused(app, response, 400, "bad_request", "native")
