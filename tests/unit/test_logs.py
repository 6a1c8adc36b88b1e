"""The JSON log formatter and its context ids."""

from __future__ import annotations

import json
import logging
import sys

from spool.logs import JsonFormatter, bind, clear


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
