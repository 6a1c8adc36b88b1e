"""Every exception spool raises on purpose.

    SpoolError
    ├── ConfigError          a setting is missing or malformed
    ├── StreamNotFoundError  no stream with that id (unknown, malformed or expired)
    ├── StreamClosedError    the stream already holds its terminal event
    └── UpstreamError        the model call failed; carries an error-event code
"""

from __future__ import annotations


class SpoolError(Exception):
    """Base class of spool's own errors."""


class ConfigError(SpoolError):
    """A setting is missing or malformed."""


class StreamNotFoundError(SpoolError):
    """No stream has that id, or it has expired."""


class StreamClosedError(SpoolError):
    """A write was refused because the stream already ended."""


class UpstreamError(SpoolError):
    """The upstream model call failed.

    `code` is one of the error-event codes in docs/protocol.md; `message` is
    safe to show to clients (a summary, or the upstream's own message
    sanitised: never its raw body, never the API key). When the upstream
    answered with an HTTP error, `status` is its status, and `param` and
    `upstream_code` are what its error object named (e.g. "messages",
    "context_length_exceeded"), when it named them.
    """

    def __init__(self, code: str, message: str, *, status: int | None = None, param: str | None = None,
                 upstream_code: str | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.status = status
        self.param = param
        self.upstream_code = upstream_code

    def event_data(self) -> dict[str, object]:
        """The `error` event's fields: code and message, then status, param
        and upstream_code where known."""
        data: dict[str, object] = {"code": self.code, "message": self.message}
        for key in ("status", "param", "upstream_code"):
            if getattr(self, key) is not None:
                data[key] = getattr(self, key)
        return data
