"""Stream storage in Redis: create, append, cancel, read and snapshot.

Writes go through Lua scripts so each one is atomic: events are added with
explicit entry ids `0-<seq>` together with the metadata they imply, and a
write is accepted only from the stream's current writer. A retried write that
already landed is recognised and reported as success, so writers may retry
freely after a lost reply without duplicating anything.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import redis

from spool.errors import StreamClosedError, StreamNotFoundError
from spool.events import EventType, StreamStatus, encode_data
from spool.keys import Keys
from spool.wire import seq_of

# KEYS: events, meta. ARGV: ttl, writer token, begin flag, first seq, event
# count n, n (type, data) pairs, then (field, value) pairs for the meta hash.
# Returns {last_seq, cancel_requested}, or {code, 0} with code -1 (no stream),
# -2 (stream closed or not queued when beginning), -3 (another writer).
_APPEND = """
local status = redis.call('HGET', KEYS[2], 'status')
if not status then return {-1, 0} end
local token = ARGV[2]
if ARGV[3] == '1' and status == 'queued' then
  redis.call('HSET', KEYS[2], 'writer', token)
  status = 'running'
end
if redis.call('HGET', KEYS[2], 'writer') ~= token then
  if status == 'done' or status == 'error' or status == 'cancelled' or status == 'queued' then
    return {-2, 0}
  end
  return {-3, 0}
end
local cancel = tonumber(redis.call('HGET', KEYS[2], 'cancel_requested') or '0')
local last = tonumber(redis.call('HGET', KEYS[2], 'last_seq') or '0')
local first = tonumber(ARGV[4])
local n = tonumber(ARGV[5])
if first + n - 1 <= last then return {last, cancel} end
if status ~= 'running' then return {-2, 0} end
if first ~= last + 1 then return {-3, 0} end
for i = 0, n - 1 do
  redis.call('XADD', KEYS[1], '0-' .. (first + i), 't', ARGV[6 + 2 * i], 'd', ARGV[7 + 2 * i])
end
local fields = {'last_seq', first + n - 1}
for i = 6 + 2 * n, #ARGV do fields[#fields + 1] = ARGV[i] end
redis.call('HSET', KEYS[2], unpack(fields))
redis.call('EXPIRE', KEYS[1], ARGV[1])
redis.call('EXPIRE', KEYS[2], ARGV[1])
return {first + n - 1, cancel}
"""

# KEYS: events, meta. ARGV: ttl, now, control channel, stream id.
# Returns the status after the call, or false when there is no such stream.
_CANCEL = """
local status = redis.call('HGET', KEYS[2], 'status')
if not status then return false end
if status == 'done' or status == 'error' or status == 'cancelled' then return status end
if status == 'queued' then
  local seq = tonumber(redis.call('HGET', KEYS[2], 'last_seq') or '0') + 1
  redis.call('XADD', KEYS[1], '0-' .. seq, 't', 'cancelled', 'd', '{}')
  redis.call('HSET', KEYS[2], 'status', 'cancelled', 'ended_at', ARGV[2], 'last_seq', seq)
  redis.call('EXPIRE', KEYS[1], ARGV[1])
  redis.call('EXPIRE', KEYS[2], ARGV[1])
  return 'cancelled'
end
redis.call('HSET', KEYS[2], 'cancel_requested', '1')
redis.call('PUBLISH', ARGV[3], ARGV[4])
return status
"""

# Entries read per XRANGE page when replaying a stream.
PAGE = 1000


@dataclass(frozen=True)
class StoredEvent:
    """An event as stored: its seq, type and fields JSON, still encoded."""

    seq: int
    type: bytes
    data: bytes

    @property
    def is_terminal(self) -> bool:
        return self.type in _TERMINAL_TYPES


_TERMINAL_TYPES = frozenset(t.value.encode() for t in EventType if t.is_terminal)


@dataclass(frozen=True)
class AppendResult:
    """The stream's last seq after an append, and whether cancel was asked."""

    last_seq: int
    cancel_requested: bool


def stored_event(entry_id: bytes, fields: dict[bytes, bytes]) -> StoredEvent:
    """Build a StoredEvent from one raw Redis Stream entry."""
    return StoredEvent(seq_of(entry_id), fields[b"t"], fields[b"d"])


class StreamStore:
    """The Redis operations on streams, for gateway and worker alike."""

    def __init__(self, client: redis.Redis, keys: Keys, ttl: int) -> None:
        self.redis = client
        self.keys = keys
        self.ttl = ttl
        self._append = client.register_script(_APPEND)
        self._cancel = client.register_script(_CANCEL)

    def create(self, stream_id: str, request: dict[str, Any], owner: str = "") -> None:
        """Record a new queued stream with the request it answers and, when the
        gateway requires API keys, the hash naming the key that owns it."""
        meta = self.keys.meta(stream_id)
        with self.redis.pipeline() as pipe:
            pipe.hset(meta, mapping={
                **({"owner": owner} if owner else {}),
                "status": StreamStatus.QUEUED.value,
                "model": request["model"],
                "created_at": repr(time.time()),
                "last_seq": 0,
                "request": json.dumps(request, ensure_ascii=False),
            })
            pipe.expire(meta, self.ttl)
            pipe.execute()

    def delete(self, stream_id: str) -> None:
        """Remove a stream entirely (used when enqueueing it failed)."""
        self.redis.delete(self.keys.meta(stream_id), self.keys.events(stream_id))

    def meta(self, stream_id: str) -> dict[str, str]:
        """The stream's metadata hash, decoded; raises StreamNotFoundError."""
        raw = self.redis.hgetall(self.keys.meta(stream_id))
        if not raw:
            raise StreamNotFoundError(stream_id)
        return {k.decode(): v.decode() for k, v in raw.items()}

    def append(
        self,
        stream_id: str,
        writer: str,
        first_seq: int,
        events: Sequence[tuple[EventType, dict[str, Any]]],
        *,
        begin: bool = False,
    ) -> AppendResult:
        """Append `events` as seqs first_seq, first_seq+1, ... on behalf of `writer`.

        `begin=True` claims a queued stream for `writer` (the first write of a
        generation). Raises StreamNotFoundError if the stream is gone and
        StreamClosedError if it ended or belongs to another writer.
        """
        args: list[Any] = [self.ttl, writer, "1" if begin else "0", first_seq, len(events)]
        fields: list[Any] = []
        for type_, data in events:
            args += [type_.value, encode_data(data)]
            fields += _meta_fields(type_, data)
        code, cancel = self._append(
            keys=[self.keys.events(stream_id), self.keys.meta(stream_id)], args=args + fields
        )
        if code == -1:
            raise StreamNotFoundError(stream_id)
        if code < 0:
            raise StreamClosedError(stream_id)
        return AppendResult(int(code), bool(cancel))

    def cancel(self, stream_id: str) -> StreamStatus:
        """Cancel a queued stream now, or ask its worker to stop a running one.

        Returns the status after the call; raises StreamNotFoundError."""
        status = self._cancel(
            keys=[self.keys.events(stream_id), self.keys.meta(stream_id)],
            args=[self.ttl, repr(time.time()), self.keys.control_channel, stream_id],
        )
        if not status:
            raise StreamNotFoundError(stream_id)
        return StreamStatus(status.decode())

    def read(self, stream_id: str, after: int, upto: int | None = None) -> Iterator[StoredEvent]:
        """Stored events with after < seq (<= upto), in pages, oldest first."""
        key = self.keys.events(stream_id)
        end = "+" if upto is None else f"0-{upto}"
        start = after + 1
        while True:
            entries = self.redis.xrange(key, f"0-{start}", end, count=PAGE)
            for entry_id, fields in entries:
                yield stored_event(entry_id, fields)
            if len(entries) < PAGE:
                return
            start = seq_of(entries[-1][0]) + 1

    def snapshot(self, stream_id: str) -> dict[str, Any]:
        """The stream's state as the snapshot route returns it."""
        meta = self.meta(stream_id)
        text = "".join(
            json.loads(event.data)["text"]
            for event in self.read(stream_id, 0)
            if event.type == b"delta"
        )
        error = None
        if "error_code" in meta:
            error = {"code": meta["error_code"], "message": meta.get("error_message", "")}
        return {
            "id": stream_id,
            "status": meta["status"],
            "model": meta.get("model"),
            "text": text,
            "last_seq": int(meta.get("last_seq", 0)),
            "finish_reason": meta.get("finish_reason"),
            "usage": json.loads(meta["usage"]) if meta.get("usage") else None,
            "error": error,
            "created_at": _float(meta.get("created_at")),
            "started_at": _float(meta.get("started_at")),
            "ended_at": _float(meta.get("ended_at")),
            "cancel_requested": meta.get("cancel_requested") == "1",
        }


def _meta_fields(type_: EventType, data: dict[str, Any]) -> list[Any]:
    """The metadata an event implies, as flat (field, value) pairs."""
    now = repr(time.time())
    if type_ is EventType.START:
        return ["status", StreamStatus.RUNNING.value, "started_at", now]
    if type_ is EventType.DONE:
        usage = json.dumps(data["usage"]) if data.get("usage") else ""
        return ["status", "done", "ended_at", now, "finish_reason", data["finish_reason"], "usage", usage]
    if type_ is EventType.ERROR:
        return ["status", "error", "ended_at", now, "error_code", data["code"], "error_message", data["message"]]
    if type_ is EventType.CANCELLED:
        return ["status", "cancelled", "ended_at", now]
    return []


def _float(value: str | None) -> float | None:
    return float(value) if value else None
