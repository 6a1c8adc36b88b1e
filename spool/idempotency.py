"""Idempotency-Key: every POST with one key gets the outcome the first decided.

As with Stripe's idempotency keys, the key is claimed atomically together
with the outcome it will return. One Redis string per key holds a record:

    pending   the first request claimed the key and is creating stream <id>
    stream    the stream <id> exists: every retry names it
    refused   the first request was refused (429/503): retries get that same
              refusal until its Retry-After has passed, then may try afresh

A request that finds the key pending waits (bounded) until it is decided;
so no retry ever names a stream that does not exist yet, or never will.
A pending record outlives a crashed claimer by PENDING_SECONDS at most.
"""

from __future__ import annotations

import hashlib
import json
import time
from dataclasses import dataclass
from enum import Enum
from typing import Any

import redis

from spool.keys import Keys

MAX_KEY_LENGTH = 255
# How long a claim may stay undecided: creating a stream is one or two Redis
# round trips, so this only matters when the claimer's process died.
PENDING_SECONDS = 10
# A waiter's polls start short (the decision is usually a millisecond away)
# and back off to this.
MAX_POLL_SECONDS = 0.05

# KEYS: record. ARGV: expected (pending) value, new value, ttl seconds.
# Decides a claim only if it is still the caller's.
_DECIDE = """
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
redis.call('SET', KEYS[1], ARGV[2], 'EX', ARGV[3])
return 1
"""

# KEYS: record. ARGV: expected value. Deletes the record only if unchanged.
_FORGET = """
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
return redis.call('DEL', KEYS[1])
"""


class State(str, Enum):
    PENDING = "pending"
    STREAM = "stream"
    REFUSED = "refused"


@dataclass(frozen=True)
class Record:
    """What a key is bound to. `refusal` holds the refused answer's fields
    (status, code, message, retry_after)."""

    state: State
    fingerprint: str
    stream_id: str | None = None
    refusal: dict[str, Any] | None = None

    def encode(self) -> str:
        return json.dumps({"state": self.state.value, "fp": self.fingerprint, "stream_id": self.stream_id,
                           "refusal": self.refusal}, separators=(",", ":"))

    @classmethod
    def decode(cls, raw: bytes) -> Record:
        if not raw.startswith(b"{"):  # written before records: "<stream id>:<fingerprint>"
            stream_id, _, print_ = raw.decode().partition(":")
            return cls(State.STREAM, print_, stream_id)
        fields = json.loads(raw)
        return cls(State(fields["state"]), fields["fp"], fields.get("stream_id"), fields.get("refusal"))


def is_valid_key(value: str) -> bool:
    """Printable ASCII, 1 to 255 characters (the header's usual form)."""
    return 0 < len(value) <= MAX_KEY_LENGTH and value.isascii() and value.isprintable()


def fingerprint(request: dict[str, Any]) -> str:
    """A digest of the validated request, to refuse a key reused for another body."""
    return hashlib.sha256(json.dumps(request, sort_keys=True, ensure_ascii=False).encode()).hexdigest()


class IdempotencyKeys:
    """The records of one key namespace (`scoped_key` is the caller's key
    with its owner, so one client cannot see another's streams)."""

    def __init__(self, client: redis.Redis, keys: Keys) -> None:
        self._client = client
        self._keys = keys

    def name(self, scoped_key: str) -> str:
        return self._keys.idempotency(hashlib.sha256(scoped_key.encode()).hexdigest())

    def claim(self, name: str, stream_id: str, print_: str) -> tuple[Record, bool]:
        """Claim the key for a new stream `stream_id`: (our pending record,
        True) when this call claimed it, else (the record found, False)."""
        pending = Record(State.PENDING, print_, stream_id)
        if self._client.set(name, pending.encode(), nx=True, ex=PENDING_SECONDS):
            return pending, True
        raw = self._client.get(name)
        if raw is None:  # expired or forgotten between SET and GET
            return self.claim(name, stream_id, print_)
        return Record.decode(raw), False

    def decide(self, name: str, pending: Record, outcome: Record, ttl: int) -> bool:
        """Replace our `pending` claim by its `outcome`, kept `ttl` seconds;
        False if the claim was no longer ours (it outlived PENDING_SECONDS)."""
        script = self._client.register_script(_DECIDE)
        return bool(script(keys=[name], args=[pending.encode(), outcome.encode(), max(1, int(ttl))]))

    def forget(self, name: str, record: Record) -> None:
        """Drop `record` (a claim that decided nothing, or a stream that has
        expired), unless the key has moved on since."""
        self._client.register_script(_FORGET)(keys=[name], args=[record.encode()])

    def wait(self, name: str, timeout: float = PENDING_SECONDS + 1) -> Record | None:
        """The key's record once it is no longer pending (None: it was
        forgotten or expired); still pending after `timeout`: that record."""
        deadline = time.monotonic() + timeout
        delay = 0.001
        while True:
            raw = self._client.get(name)
            if raw is None:
                return None
            record = Record.decode(raw)
            if record.state is not State.PENDING or time.monotonic() >= deadline:
                return record
            time.sleep(delay)
            delay = min(delay * 2, MAX_POLL_SECONDS)
