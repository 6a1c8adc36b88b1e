"""Every Redis key and channel name spool uses, and the stream id format.

A stream's keys share the hash tag `{<id>}` so they live in one Redis Cluster
slot and a Lua script may touch them together.
"""

from __future__ import annotations

import re
import secrets
from dataclasses import dataclass

_STREAM_ID = re.compile(r"[A-Za-z0-9_-]{22}")


def new_stream_id() -> str:
    """A fresh stream id: 128 random bits, URL-safe, 22 characters, never
    starting with `-` (a command line such as `spool status <id>` would read
    it as an option)."""
    while True:
        stream_id = secrets.token_urlsafe(16)
        if not stream_id.startswith("-"):
            return stream_id


def is_stream_id(value: str) -> bool:
    """True when `value` has the form of a stream id (checked before any key is built)."""
    return bool(_STREAM_ID.fullmatch(value))


@dataclass(frozen=True)
class Keys:
    """Key names under one prefix (tests give each test its own prefix)."""

    prefix: str = "spool"

    def events(self, stream_id: str) -> str:
        """The Redis Stream holding the events, entry id `0-<seq>`."""
        return f"{self.prefix}:{{{stream_id}}}:events"

    def meta(self, stream_id: str) -> str:
        """The hash holding status, request and summary fields."""
        return f"{self.prefix}:{{{stream_id}}}:meta"

    def rate_window(self, subject: str, window: int) -> str:
        """The request counter of one client (key owner or IP) in one minute window."""
        return f"{self.prefix}:rate:{{{subject}}}:{window}"

    def live_streams(self, subject: str) -> str:
        """The sorted set of one client's streams that may still be live."""
        return f"{self.prefix}:live:{{{subject}}}"

    def ui_chat(self, owner: str, chat_id: str) -> str:
        """The id of the latest stream of an AI SDK chat (gateway/ui_routes.py),
        per owner: a chat id names one chat of the key that created it."""
        return f"{self.prefix}:uichat:{owner}:{chat_id}"

    @property
    def generated_secret(self) -> str:
        """The read-token secret generated when SPOOL_SECRET_KEY is unset (dev)."""
        return f"{self.prefix}:secret"

    @property
    def leases(self) -> str:
        """Sorted set of running stream ids by lease expiry (ms): where lost
        generations are found. The lease itself lives in each stream's meta."""
        return f"{self.prefix}:leases"

    def idempotency(self, digest: str) -> str:
        """The stream created for an Idempotency-Key (by the key's digest)."""
        return f"{self.prefix}:idem:{digest}"

    @property
    def control_channel(self) -> str:
        """Pub/sub channel on which gateways tell workers to cancel a stream."""
        return f"{self.prefix}:control"

    @property
    def activity_channel(self) -> str:
        """Pub/sub channel on which every write that adds events to a stream
        publishes the stream's events key, for the gateways' TailHubs."""
        return f"{self.prefix}:activity"
