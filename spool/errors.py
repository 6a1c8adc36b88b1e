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

    `code` is one of the error-event codes in docs/protocol.md; `message` is a
    summary safe to show to clients (never the upstream's raw body).
    """

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
