"""Structured logs: one JSON object per line, with the stream and request ids.

The ids live in context variables, which gevent keeps per greenlet, so every
line a request (or a generation) logs carries them without passing them
around. Imports only the standard library: gunicorn's master loads it.

SPOOL_LOG_FORMAT=text gives one plain line per record instead, for a person
at a terminal: `spool dev` sets it for its processes when its stderr is a
terminal. JSON stays the default everywhere else.
"""

from __future__ import annotations

import contextvars
import json
import logging
import os
import sys
import time
from typing import Any
from urllib.parse import urlsplit, urlunsplit

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


class TextFormatter(logging.Formatter):
    """Formats a record as one line for a person: time, level, logger, message,
    then the ids and extras as key=value; a traceback follows on its own lines."""

    def format(self, record: logging.LogRecord) -> str:
        stamp = time.strftime("%H:%M:%S", time.localtime(record.created))
        parts = [f"{stamp} {record.levelname:<7} {record.name}: {record.getMessage()}"]
        context = {"stream": stream_id_var.get(), "request": request_id_var.get()}
        context.update((k, v) for k, v in vars(record).items() if k not in _RECORD_FIELDS)
        parts += [f"{key}={value}" for key, value in context.items() if value is not None]
        line = "  ".join(parts)
        if record.exc_info:
            line += "\n" + self.formatException(record.exc_info)
        return line


FORMATTERS: dict[str, type[logging.Formatter]] = {"json": JsonFormatter, "text": TextFormatter}


def log_format(environ: dict[str, str] | None = None) -> str:
    """The format SPOOL_LOG_FORMAT names: "json" (the default) or "text"."""
    name = (os.environ if environ is None else environ).get("SPOOL_LOG_FORMAT", "").strip().lower() or "json"
    if name not in FORMATTERS:
        raise ValueError(f"SPOOL_LOG_FORMAT must be json or text, not {name!r}")
    return name


def redact_url(url: str) -> str:
    """`url` with its password (if any) replaced by ***, for start-up lines
    and logs: redis://:secret@host/0 -> redis://:***@host/0."""
    try:
        parts = urlsplit(url)
        password = parts.password
    except ValueError:
        return "(a malformed URL)"
    if not password:
        return url
    userinfo, _, hostinfo = parts.netloc.rpartition("@")
    user = userinfo.split(":", 1)[0]
    return urlunsplit(parts._replace(netloc=f"{user}:***@{hostinfo}"))


def configure(level: str = "INFO", fmt: str | None = None) -> None:
    """Send every logger's records to stderr at `level`, as JSON lines (or in
    `fmt`, default SPOOL_LOG_FORMAT)."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(FORMATTERS[fmt or log_format()]())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())


def gunicorn_logconfig(level: str) -> dict[str, Any]:
    """A logging dictConfig for gunicorn, so its own lines are in spool's
    format too (JSON, or SPOOL_LOG_FORMAT's)."""
    formatter = FORMATTERS[log_format()]
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {"spool": {"()": f"spool.logs.{formatter.__name__}"}},
        "handlers": {"stderr": {"class": "logging.StreamHandler", "formatter": "spool", "stream": "ext://sys.stderr"}},
        "root": {"level": level.upper(), "handlers": ["stderr"]},
        "loggers": {
            "gunicorn.error": {"level": level.upper(), "handlers": ["stderr"], "propagate": False},
            "gunicorn.access": {"level": "INFO", "handlers": ["stderr"], "propagate": False},
        },
    }
