"""Every Redis key and channel name spool uses, and the stream id format.

A stream's keys share the hash tag `{<id>}` so they live in one Redis Cluster
slot and a Lua script may touch them together; so does its activity channel,
a shard channel the scripts SPUBLISH on. Nothing spool does touches two slots
in one command: the lease index is split into LEASE_BUCKETS sorted sets (one
slot each), and each worker process listens for cancels on a shard channel
of its own.
"""

from __future__ import annotations

import re
import secrets
import zlib
from dataclasses import dataclass

_STREAM_ID = re.compile(r"[A-Za-z0-9_-]{22}")

# The lease index's buckets: enough to spread over the masters of a large
# cluster, few enough that a worker's sweep reads them all in one round trip
# per node.
LEASE_BUCKETS = 16


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

    def leases(self, stream_id: str) -> str:
        """The lease index bucket of `stream_id`: a sorted set of running
        stream ids by lease expiry (ms), where lost generations are found.
        The lease itself lives in each stream's meta."""
        return self.lease_bucket(zlib.crc32(stream_id.encode()) % LEASE_BUCKETS)

    def lease_bucket(self, bucket: int) -> str:
        """Lease index bucket number `bucket` (0 <= bucket < LEASE_BUCKETS)."""
        return f"{self.prefix}:leases:{{{self.prefix}-l{bucket}}}"

    def idempotency(self, digest: str) -> str:
        """The stream created for an Idempotency-Key (by the key's digest)."""
        return f"{self.prefix}:idem:{digest}"

    def control_channel(self, worker: str) -> str:
        """The shard channel on which gateways tell one worker process to
        cancel a stream it runs (the stream's meta names it, field `control`)."""
        return f"{self.prefix}:control:{{{worker}}}"

    def activity(self, stream_id: str) -> str:
        """The stream's shard channel: every write that adds events to the
        stream SPUBLISHes its events key there, for the gateways' TailHubs."""
        return f"{self.prefix}:{{{stream_id}}}:activity"

    @staticmethod
    def activity_of(events_key: bytes) -> bytes:
        """The activity channel of the stream whose events key is `events_key`."""
        return events_key[: -len(b"events")] + b"activity"
