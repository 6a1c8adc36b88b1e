"""JSON errors: one error type, rendered in each API's shape by one handler.

Every failure becomes an `ApiError` (`as_api_error`): those the routes
raise, werkzeug's HTTP errors, Redis failures and anything unexpected. The
native API renders it as `{"error": {"code", "message"}}` (`render_native`,
the app's handler); the OpenAI-compatible routes as
`{"error": {"message", "type", "param", "code"}}` (`render_openai`, their
blueprint's handler). Both add `Retry-After` when the error carries one.
gunicorn's own errors (before the app runs) are JSON too: see
gateway/gunicorn_worker.py.
"""

from __future__ import annotations

import logging
from typing import Any

import redis
from flask import Flask, Response, jsonify
from werkzeug.exceptions import HTTPException

from gateway.metrics import REDIS_ERRORS

log = logging.getLogger(__name__)

# Werkzeug's status codes under the names docs/protocol.md gives them.
_HTTP_CODES = {
    400: "bad_request",
    404: "not_found",
    405: "method_not_allowed",
    413: "payload_too_large",
    415: "unsupported_media_type",
}

REDIS_RETRY_AFTER = 2


class ApiError(Exception):
    """An error the client caused or must know about: its HTTP status, a
    stable `code`, a message, the request parameter at fault (`param`) and
    how many seconds to wait before retrying (`retry_after`)."""

    def __init__(self, status: int, code: str, message: str, param: str | None = None,
                 retry_after: int | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.param = param
        self.retry_after = None if retry_after is None else max(1, int(retry_after))


def redis_error(exc: redis.RedisError) -> ApiError:
    """503 `unavailable`, saying why: Redis full, read-only, or unreachable."""
    if isinstance(exc, redis.exceptions.OutOfMemoryError):
        why = "is full (Redis is out of memory)"
    elif isinstance(exc, redis.exceptions.ReadOnlyError):
        why = "is read-only (Redis is failing over)"
    elif isinstance(exc, (redis.ConnectionError, redis.TimeoutError)):
        why = "is unreachable"
    else:
        why = "failed"
    return ApiError(503, "unavailable", f"the stream store {why}; retry shortly", retry_after=REDIS_RETRY_AFTER)


def as_api_error(exc: Exception) -> ApiError:
    """Any exception as the ApiError the client gets; logs what needs logging."""
    if isinstance(exc, ApiError):
        return exc
    if isinstance(exc, HTTPException):
        status = exc.code or 500
        return ApiError(status, _HTTP_CODES.get(status, "http_error"), exc.description or exc.name)
    if isinstance(exc, redis.RedisError):
        REDIS_ERRORS.inc()
        log.error("Redis unavailable: %s", exc)
        return redis_error(exc)
    log.error("unhandled error", exc_info=exc)
    return ApiError(500, "internal_error", "internal error")


def _respond(exc: ApiError, body: dict[str, Any]) -> Response:
    response = jsonify(body)
    response.status_code = exc.status
    if exc.retry_after is not None:
        response.headers["Retry-After"] = str(exc.retry_after)
    return response


def render_native(exc: Exception) -> Response:
    """The native API's error response."""
    error = as_api_error(exc)
    body = {"code": error.code, "message": error.message}
    if error.param is not None:
        body["param"] = error.param  # the request parameter at fault, e.g. "messages[2].content"
    return _respond(error, {"error": body})


def render_openai(exc: Exception) -> Response:
    """The OpenAI-compatible API's error response."""
    error = as_api_error(exc)
    type_ = "server_error" if error.status >= 500 else "invalid_request_error"
    return _respond(error, {"error": {"message": error.message, "type": type_, "param": error.param,
                                      "code": error.code}})


def register_error_handlers(app: Flask) -> None:
    """Make every error, expected or not, a JSON response in the native shape
    (blueprints of other APIs register their own renderer)."""
    app.register_error_handler(Exception, render_native)
