"""Structured logs: one JSON object per line, with the stream and request ids.

The ids live in context variables, which gevent keeps per greenlet, so every
line a request (or a generation) logs carries them without passing them
around. Imports only the standard library: gunicorn's master loads it.
"""

from __future__ import annotations

import contextvars
import json
import logging
import sys
import time
from typing import Any

stream_id_var: contextvars.ContextVar[str | None] = contextvars.ContextVar("spool_stream_id", default=None)
request_id_var: contextvars.ContextVar[str | None] = contextvars.ContextVar("spool_request_id", default=None)

# LogRecord's own attributes: everything else on a record came from `extra=`.
_RECORD_FIELDS = frozenset(vars(logging.makeLogRecord({}))) | {"message", "asctime", "taskName"}


def bind(*, stream_id: str | None = None, request_id: str | None = None) -> None:
    """Set the ids that the current request or generation's log lines carry."""
    if stream_id is not None:
        stream_id_var.set(stream_id)
    if request_id is not None:
        request_id_var.set(request_id)


def clear() -> None:
    """Forget both ids (at the start of a new request or job)."""
    stream_id_var.set(None)
    request_id_var.set(None)


class JsonFormatter(logging.Formatter):
    """Formats a record as one JSON line: ts, level, logger, msg, the ids, extras."""

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created)) + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
            "stream_id": stream_id_var.get(),
            "request_id": request_id_var.get(),
        }
        for key, value in vars(record).items():
            if key not in _RECORD_FIELDS and key not in line:
                line[key] = value
        if record.exc_info:
            line["exc"] = self.formatException(record.exc_info)
        return json.dumps(line, default=str, ensure_ascii=False)


def configure(level: str = "INFO") -> None:
    """Send every logger's records to stderr as JSON lines at `level`."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())


def gunicorn_logconfig(level: str) -> dict[str, Any]:
    """A logging dictConfig for gunicorn, so its own lines are JSON too."""
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {"json": {"()": "spool.logs.JsonFormatter"}},
        "handlers": {"stderr": {"class": "logging.StreamHandler", "formatter": "json", "stream": "ext://sys.stderr"}},
        "root": {"level": level.upper(), "handlers": ["stderr"]},
        "loggers": {
            "gunicorn.error": {"level": level.upper(), "handlers": ["stderr"], "propagate": False},
            "gunicorn.access": {"level": "INFO", "handlers": ["stderr"], "propagate": False},
        },
    }
