"""The JSON log formatter and its context ids."""

from __future__ import annotations

import json
import logging
import sys

import pytest

from spool.logs import JsonFormatter, TextFormatter, bind, clear, gunicorn_logconfig, log_format, redact_url


def record(msg: str, **extra) -> logging.LogRecord:
    rec = logging.makeLogRecord({"name": "t", "levelname": "INFO", "msg": msg, "args": None})
    rec.__dict__.update(extra)
    return rec


def test_a_line_carries_the_bound_ids_and_extras():
    clear()
    bind(stream_id="s1", request_id="r1")
    line = json.loads(JsonFormatter().format(record("hello\nworld", model="m")))
    assert line["msg"] == "hello\nworld" and line["stream_id"] == "s1" and line["request_id"] == "r1"
    assert line["model"] == "m" and line["level"] == "info" and line["ts"].endswith("Z")
    clear()
    line = json.loads(JsonFormatter().format(record("x")))
    assert line["stream_id"] is None and line["request_id"] is None


def test_exceptions_stay_on_one_line():
    try:
        raise ValueError("bad")
    except ValueError:
        rec = record("failed", exc_info=sys.exc_info())
    text = JsonFormatter().format(rec)
    assert "\n" not in text and "ValueError: bad" in json.loads(text)["exc"]


def test_the_text_format_is_one_readable_line_with_the_ids():
    clear()
    bind(stream_id="s1")
    line = TextFormatter().format(record("stream queued", model="m"))
    clear()
    assert " INFO    t: stream queued" in line and "stream=s1" in line and "model=m" in line
    assert "\n" not in line and "{" not in line
    try:
        raise ValueError("bad")
    except ValueError:
        rec = record("failed", exc_info=sys.exc_info())
    first, *rest = TextFormatter().format(rec).splitlines()
    assert first.endswith("t: failed") and rest[-1] == "ValueError: bad"


def test_json_is_the_default_and_text_is_chosen_by_setting():
    assert log_format({}) == "json" and log_format({"SPOOL_LOG_FORMAT": ""}) == "json"
    assert log_format({"SPOOL_LOG_FORMAT": "Text"}) == "text"
    with pytest.raises(ValueError, match="json or text"):
        log_format({"SPOOL_LOG_FORMAT": "xml"})


def test_gunicorn_lines_follow_the_setting(monkeypatch):
    monkeypatch.delenv("SPOOL_LOG_FORMAT", raising=False)
    assert gunicorn_logconfig("info")["formatters"]["spool"]["()"] == "spool.logs.JsonFormatter"
    monkeypatch.setenv("SPOOL_LOG_FORMAT", "text")
    assert gunicorn_logconfig("info")["formatters"]["spool"]["()"] == "spool.logs.TextFormatter"


@pytest.mark.parametrize("url, shown", [
    ("redis://:s3cret@redis.example:6379/0", "redis://:***@redis.example:6379/0"),
    ("rediss://spool:s3cret@redis.example/1", "rediss://spool:***@redis.example/1"),
    ("redis://:p@ss@h:1/0", "redis://:***@h:1/0"),
    ("https://user:key@llm.example/v1", "https://user:***@llm.example/v1"),
    ("redis://127.0.0.1:6379/0", "redis://127.0.0.1:6379/0"),
    ("redis://user@h/0", "redis://user@h/0"),
    ("http://[::1", "(a malformed URL)"),
])
def test_passwords_in_urls_are_masked(url, shown):
    assert redact_url(url) == shown
