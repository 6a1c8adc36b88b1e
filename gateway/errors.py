"""JSON errors: every failure answers `{"error": {"code", "message"}}`, plus
`param` when one request parameter is at fault."""

from __future__ import annotations

import logging

import redis
from flask import Flask, jsonify
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

REDIS_RETRY_AFTER = "2"


class ApiError(Exception):
    """An error the client caused or must know about, with its HTTP status."""

    def __init__(self, status: int, code: str, message: str, param: str | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.param = param  # the request parameter at fault, e.g. "messages[2].content"


def error_response(status: int, code: str, message: str, param: str | None = None):
    """A JSON error response."""
    error = {"code": code, "message": message}
    if param is not None:
        error["param"] = param
    response = jsonify(error=error)
    response.status_code = status
    return response


def register_error_handlers(app: Flask) -> None:
    """Make every error, expected or not, a JSON response."""

    @app.errorhandler(ApiError)
    def _api_error(exc: ApiError):
        return error_response(exc.status, exc.code, exc.message, exc.param)

    @app.errorhandler(HTTPException)
    def _http_error(exc: HTTPException):
        code = exc.code or 500
        return error_response(code, _HTTP_CODES.get(code, "http_error"), exc.description or exc.name)

    @app.errorhandler(redis.RedisError)
    def _redis_error(exc: redis.RedisError):
        REDIS_ERRORS.inc()
        log.error("Redis unavailable: %s", exc)
        response = error_response(503, "unavailable", "the stream store is unavailable; retry shortly")
        response.headers["Retry-After"] = REDIS_RETRY_AFTER
        return response

    @app.errorhandler(Exception)
    def _internal_error(exc: Exception):
        log.exception("unhandled error")
        return error_response(500, "internal_error", "internal error")
