"""`spool dev`'s own checks, the page's mock notice endpoint, and cancel's
errors: a 503 only when Redis is unreachable, logged with its cause."""

from __future__ import annotations

import logging
import socket

import pytest
import redis

from cli.dev import DevError, check_port, free_port, run_dev
from spool.keys import new_stream_id

CHAT = {"messages": [{"role": "user", "content": "hi"}], "model": "m"}


@pytest.fixture
def taken_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        yield sock.getsockname()[1]


def test_a_taken_port_is_refused_with_what_to_do(taken_port):
    with pytest.raises(DevError, match=rf"port {taken_port} is already in use.*--port N, make dev PORT=N"):
        check_port(taken_port)
    check_port(free_port())
    with pytest.raises(DevError, match="not a TCP port"):
        check_port(70000)


def test_spool_dev_on_a_taken_port_stops_before_starting_anything(taken_port, capsys, monkeypatch):
    monkeypatch.delenv("REDIS_URL", raising=False)
    assert run_dev(taken_port) == 1
    out, err = capsys.readouterr()
    assert out == "" and err == (f"spool dev: port {taken_port} is already in use: stop what listens there, "
                                 "or choose another (spool dev --port N, make dev PORT=N)\n")


@pytest.fixture
def app(make_app):
    return make_app()


@pytest.mark.parametrize("value, mock", [("1", True), ("", False), (None, False)])
def test_the_page_learns_whether_the_model_is_the_mock(app, monkeypatch, value, mock):
    if value is None:
        monkeypatch.delenv("SPOOL_MOCK_UPSTREAM", raising=False)
    else:
        monkeypatch.setenv("SPOOL_MOCK_UPSTREAM", value)
    assert app.test_client().get("/upstream").get_json() == {"mock": mock}


def queued(app) -> str:
    sid = new_stream_id()
    app.extensions["spool"].store.create(sid, CHAT)
    return sid


def cancel_failing_with(app, monkeypatch, error: Exception):
    """POST cancel of a queued stream while the store's cancel raises `error`: (stream id, response)."""
    sid = queued(app)

    def refused(stream_id):
        raise error

    monkeypatch.setattr(app.extensions["spool"].store, "cancel", refused)
    return sid, app.test_client().post(f"/v1/streams/{sid}/cancel")


def test_cancel_with_redis_unreachable_is_503_and_logged_with_its_cause(app, monkeypatch, caplog):
    with caplog.at_level(logging.WARNING, logger="gateway.routes"):
        sid, response = cancel_failing_with(app, monkeypatch, redis.ConnectionError(
            "Error 111 connecting to 127.0.0.1:6379. Connection refused."))
    assert response.status_code == 503 and response.headers["Retry-After"]
    assert response.get_json()["error"]["code"] == "unavailable"
    assert any(r.name == "gateway.routes" and sid in r.getMessage() and "Connection refused" in r.getMessage()
               and "ConnectionError" in r.getMessage() for r in caplog.records), caplog.text


def test_cancel_refused_by_redis_is_not_a_503(app, monkeypatch, caplog):
    with caplog.at_level(logging.ERROR, logger="gateway.routes"):
        sid, response = cancel_failing_with(app, monkeypatch, redis.ResponseError(
            "WRONGTYPE Operation against a key holding the wrong kind of value"))
    assert response.status_code == 500 and response.get_json()["error"]["code"] == "internal_error"
    assert "WRONGTYPE" in caplog.text and sid in caplog.text
    assert "WRONGTYPE" not in response.get_data(as_text=True)
    assert app.extensions["spool"].store.meta(sid).status == "queued"
