"""Stream storage in Redis: create, append, cancel, read and snapshot.

Writes go through Lua scripts so each one is atomic: events are added with
explicit entry ids `0-<seq>` together with the metadata they imply, and a
write is accepted only from the stream's current writer. A retried write that
already landed is recognised and reported as success, so writers may retry
freely after a lost reply without duplicating anything.
"""

from __future__ import annotations

import contextlib
import json
import logging
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import redis
from redis.commands.core import Script

from spool.errors import StreamClosedError, StreamNotFoundError
from spool.events import EventType, StreamStatus, encode_data, start_data
from spool.journal import Journal
from spool.keys import LEASE_BUCKETS, Keys
from spool.message import fold
from spool.wire import seq_of

# KEYS: events, meta. ARGV: ttl, writer token, begin flag, first seq, event
# count n, activity channel, n (type, data) pairs, then (field, value) pairs
# for the meta hash. Publishes the events key on the stream's activity
# (shard) channel.
# Returns {last_seq, cancel_requested}, or {code, x} with code -1 (no stream),
# -2 (stream closed or not queued when beginning), -3 (another writer), -4
# (a gap: the stream ends at seq x, before first_seq - 1) or -5 (queued and
# not claimed, at seq x): the last two are what a failover that lost
# acknowledged writes leaves, see spool/journal.py.
_APPEND = """
local m = redis.call('HMGET', KEYS[2], 'status', 'writer', 'cancel_requested', 'last_seq')
local status, writer = m[1], m[2]
if not status then return {-1, 0} end
local token = ARGV[2]
if ARGV[3] == '1' and status == 'queued' then
  redis.call('HSET', KEYS[2], 'writer', token)
  status, writer = 'running', token
end
if writer ~= token then
  if status == 'queued' then return {-5, tonumber(m[4] or '0')} end
  if status == 'done' or status == 'error' or status == 'cancelled' then return {-2, 0} end
  return {-3, 0}
end
local cancel = tonumber(m[3] or '0')
local last = tonumber(m[4] or '0')
local first = tonumber(ARGV[4])
local n = tonumber(ARGV[5])
if first + n - 1 <= last then return {last, cancel} end
if status ~= 'running' then return {-2, 0} end
if first > last + 1 then return {-4, last} end
if first ~= last + 1 then return {-3, 0} end
for i = 0, n - 1 do
  redis.call('XADD', KEYS[1], '0-' .. (first + i), 't', ARGV[7 + 2 * i], 'd', ARGV[8 + 2 * i])
end
redis.call('SPUBLISH', ARGV[6], KEYS[1])
local fields = {'last_seq', first + n - 1}
for i = 7 + 2 * n, #ARGV do fields[#fields + 1] = ARGV[i] end
redis.call('HSET', KEYS[2], unpack(fields))
redis.call('EXPIRE', KEYS[1], ARGV[1])
redis.call('EXPIRE', KEYS[2], ARGV[1])
return {first + n - 1, cancel}
"""
# KEYS: events, meta. ARGV: ttl, now, activity channel. Returns {status after
# the call, the control channel of the worker running it ('' if none)}, or
# false when there is no such stream. The caller SPUBLISHes the cancel on that
# channel: it lives in the worker's slot, not the stream's.
_CANCEL = """
local status = redis.call('HGET', KEYS[2], 'status')
if not status then return false end
if status == 'done' or status == 'error' or status == 'cancelled' then return {status, ''} end
if status == 'queued' then
  local seq = tonumber(redis.call('HGET', KEYS[2], 'last_seq') or '0') + 1
  redis.call('XADD', KEYS[1], '0-' .. seq, 't', 'cancelled', 'd', '{}')
  redis.call('SPUBLISH', ARGV[3], KEYS[1])
  redis.call('HSET', KEYS[2], 'status', 'cancelled', 'ended_at', ARGV[2], 'last_seq', seq)
  redis.call('EXPIRE', KEYS[1], ARGV[1])
  redis.call('EXPIRE', KEYS[2], ARGV[1])
  return {'cancelled', ''}
end
redis.call('HSET', KEYS[2], 'cancel_requested', '1')
return {status, redis.call('HGET', KEYS[2], 'control') or ''}
"""

# KEYS: meta, events. ARGV: lease expiry (ms), writer token ('' to only take
# the lease), now (s), ttl, activity channel, the worker's control channel
# (recorded as `control`, where cancels for it go). A worker takes a queued
# stream's lease before its first write. Returns {1, meta} when it took it,
# {0, meta} when the stream is not queued (meta: the hash as a flat list, as
# it was before the call; empty when gone). With a writer token, a stream
# with nothing written yet is also claimed for the writer with the `start`
# event its gateway stored (as the append script's begin would), and the
# reply is {2, meta}.
_ACQUIRE = """
local meta = redis.call('HGETALL', KEYS[1])
local field = {}
for i = 1, #meta, 2 do field[meta[i]] = meta[i + 1] end
if field.status ~= 'queued' then return {0, meta} end
-- The master's replication id: reclaim compares it to tell a failover (see _RECLAIM).
local ok, info = pcall(redis.call, 'INFO', 'replication')
local replid = ok and string.match(info, 'master_replid:(%w+)') or ''
redis.call('HSET', KEYS[1], 'lease_until', ARGV[1], 'control', ARGV[6], 'replid', replid)
if ARGV[2] == '' or not field.start_data or field.last_seq ~= '0' then return {1, meta} end
redis.call('XADD', KEYS[2], '0-1', 't', 'start', 'd', field.start_data)
redis.call('SPUBLISH', ARGV[5], KEYS[2])
redis.call('HSET', KEYS[1], 'writer', ARGV[2], 'status', 'running', 'last_seq', 1, 'started_at', ARGV[3])
redis.call('EXPIRE', KEYS[2], ARGV[4])
redis.call('EXPIRE', KEYS[1], ARGV[4])
return {2, meta}
"""

# KEYS: meta. ARGV: writer token, lease expiry (ms). Returns 1 while the
# writer still owns the running stream, 0 once it lost it.
_RENEW = """
if redis.call('HGET', KEYS[1], 'status') ~= 'running' then return 0 end
if redis.call('HGET', KEYS[1], 'writer') ~= ARGV[1] then return 0 end
redis.call('HSET', KEYS[1], 'lease_until', ARGV[2])
return 1
"""

# KEYS: events, meta. ARGV: now (ms), max attempts, reason, ttl, now (s), force,
# activity channel (published to when the script ends the stream), the seq
# margin a rerun skips after a failover (FAILOVER_SEQ_MARGIN).
# Takes a stream from a writer whose lease expired (or, with force, from one
# that gives it up). Returns {outcome, attempt}: outcome 'requeue' (run it
# again; attempt is the next one), 'failed' (attempts used up: ended with an
# error event), 'cancelled' (a cancel was pending: ended cancelled), 'alive'
# (its lease was renewed), or 'gone' (expired, ended, or not leased).
_RECLAIM = """
local status = redis.call('HGET', KEYS[2], 'status')
local lease = redis.call('HGET', KEYS[2], 'lease_until')
if (status ~= 'running' and status ~= 'queued') or not lease then return {'gone', 0} end
if ARGV[6] ~= '1' and tonumber(lease) > tonumber(ARGV[1]) then return {'alive', 0} end
local attempt = tonumber(redis.call('HGET', KEYS[2], 'attempt') or '1')
local function close(type_, data, fields)
  local seq = tonumber(redis.call('HGET', KEYS[2], 'last_seq') or '0') + 1
  redis.call('XADD', KEYS[1], '0-' .. seq, 't', type_, 'd', data)
  redis.call('SPUBLISH', ARGV[7], KEYS[1])
  redis.call('HSET', KEYS[2], 'last_seq', seq, 'ended_at', ARGV[5], 'writer', '', unpack(fields))
  redis.call('HDEL', KEYS[2], 'lease_until')
  redis.call('EXPIRE', KEYS[1], ARGV[4])
  redis.call('EXPIRE', KEYS[2], ARGV[4])
end
if redis.call('HGET', KEYS[2], 'cancel_requested') == '1' then
  close('cancelled', '{}', {'status', 'cancelled'})
  return {'cancelled', attempt}
end
if status == 'running' and attempt >= tonumber(ARGV[2]) then
  local message = 'the answer was lost ' .. attempt .. ' times (' .. ARGV[3] .. ')'
  close('error', cjson.encode({code = 'worker_lost', message = message}),
        {'status', 'error', 'error_code', 'worker_lost', 'error_message', message})
  return {'failed', attempt}
end
if status == 'running' then
  attempt = attempt + 1
  redis.call('HSET', KEYS[2], 'attempt', attempt, 'reset_reason', ARGV[3])
  -- A failover since the lease began (another replication id) may have lost
  -- events clients read, with their writer: the rerun's `reset` goes past
  -- any seq they may hold, so none is reused with other content.
  local ok, info = pcall(redis.call, 'INFO', 'replication')
  local replid = ok and string.match(info, 'master_replid:(%w+)') or ''
  local leased = redis.call('HGET', KEYS[2], 'replid')
  if leased and leased ~= '' and replid ~= '' and leased ~= replid then
    local last = tonumber(redis.call('HGET', KEYS[2], 'last_seq') or '0')
    redis.call('HSET', KEYS[2], 'last_seq', last + tonumber(ARGV[8]), 'history_lost', '1')
  end
end
redis.call('HSET', KEYS[2], 'status', 'queued', 'writer', '')
redis.call('HDEL', KEYS[2], 'lease_until')
return {'requeue', attempt}
"""

log = logging.getLogger(__name__)

# Seqs a rerun skips when its stream's master failed over during the lost
# run: more events than a replica can lag behind (a second of replication
# lag is ~50 events at the Flusher's 20 ms ticks).
FAILOVER_SEQ_MARGIN = 100_000

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
class AppendRequest:
    """One append: `events` as seqs first_seq, first_seq+1, ... by `writer`
    (`begin`: claiming the queued stream)."""

    stream_id: str
    writer: str
    first_seq: int
    events: Sequence[tuple[EventType, dict[str, Any]]]
    begin: bool = False


@dataclass(frozen=True)
class Lease:
    """The outcome of acquire_lease: `taken`, whether the `start` event was
    written with it (`started`), and the stream's metadata as it was just
    before (`status` says why when not taken)."""

    taken: bool
    meta: dict[str, str]
    started: bool = False


@dataclass(frozen=True)
class AppendResult:
    """The stream's last seq after an append, and whether cancel was asked."""

    last_seq: int
    cancel_requested: bool


def stored_event(entry_id: bytes, fields: dict[bytes, bytes]) -> StoredEvent:
    """Build a StoredEvent from one raw Redis Stream entry."""
    return StoredEvent(seq_of(entry_id), fields[b"t"], fields[b"d"])


class StreamStore:
    """The Redis operations on streams, for gateway and worker alike, on a
    single Redis or a Redis Cluster (every script and command touches one
    slot; pipelines may span nodes).

    `control` is the shard channel of the worker process using the store
    (Keys.control_channel): the leases it takes record it, so a cancel goes
    to that worker alone."""

    def __init__(self, client: redis.Redis, keys: Keys, ttl: int, control: str = "") -> None:
        self.redis = client
        self.keys = keys
        self.ttl = ttl
        self.control = control
        self.journal = Journal()
        self._append = client.register_script(_APPEND)
        self._cancel = client.register_script(_CANCEL)
        self._acquire = client.register_script(_ACQUIRE)
        self._renew = client.register_script(_RENEW)
        self._reclaim = client.register_script(_RECLAIM)

    def create(self, stream_id: str, request: dict[str, Any], owner: str = "",
               pipeline: redis.client.Pipeline | None = None) -> None:
        """Record a new queued stream with the request it answers and, when the
        gateway requires API keys, the hash naming the key that owns it. With
        `pipeline`, the commands join it and the caller executes it."""
        meta = self.keys.meta(stream_id)
        now = time.time()
        with self.redis.pipeline() if pipeline is None else contextlib.nullcontext(pipeline) as pipe:
            pipe.hset(meta, mapping={
                **({"owner": owner} if owner else {}),
                "status": StreamStatus.QUEUED.value,
                "model": request["model"],
                "created_at": repr(now),
                "last_seq": 0,
                "request": json.dumps(request, ensure_ascii=False),
                # The first event, written by the worker's lease (acquire_lease).
                "start_data": encode_data(start_data(stream_id, request["model"], now)),
            })
            pipe.expire(meta, self.ttl)
            if pipeline is None:
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
        request = AppendRequest(stream_id, writer, first_seq, events, begin)
        keys, args = self._append_call(request)
        return self._settle(request, self._append(keys=keys, args=args))

    def append_many(self, requests: Sequence[AppendRequest]) -> list[AppendResult | Exception]:
        """Make several appends in one pipelined round trip (not atomic
        together). Each outcome is its AppendResult, or the exception `append`
        would raise for it; a lost connection raises for all."""
        calls = [self._append_call(request) for request in requests]
        with self.redis.pipeline(transaction=False) as pipe:
            for keys, args in calls:
                # By SHA: a Script on a pipeline would ask SCRIPT EXISTS first, every time.
                _evalsha(pipe, self._append, keys, args)
            replies = pipe.execute(raise_on_error=False)
        outcomes: list[AppendResult | Exception] = []
        for request, (keys, args), reply in zip(requests, calls, replies):
            if isinstance(reply, redis.exceptions.NoScriptError):  # Redis restarted: the Script reloads it
                try:
                    reply = self._append(keys=keys, args=args)
                except redis.ResponseError as exc:
                    reply = exc
            try:
                outcomes.append(reply if isinstance(reply, Exception) else self._settle(request, reply))
            except (StreamNotFoundError, StreamClosedError) as exc:
                outcomes.append(exc)
        return outcomes

    def _settle(self, request: AppendRequest, reply: list[int], *, restoring: bool = False) -> AppendResult:
        """The outcome of an append script call: recorded in the journal when
        it landed, the lost tail restored first when a failover lost it."""
        code, detail = reply[0], reply[1]
        if code in (-4, -5) and not restoring:
            return self._restore(request, int(detail))
        if code < 0:  # this writer is done with the stream: nothing of it to restore
            self.journal.forget(request.stream_id, request.writer)
        result = _append_result(request.stream_id, [code, detail if code >= 0 else 0])
        self.journal.record(request.stream_id, request.writer, request.first_seq, request.events)
        return result

    def _restore(self, request: AppendRequest, last: int) -> AppendResult:
        """Re-append, with their seqs and content, the events this writer had
        acknowledged after seq `last` and the stream no longer holds (its
        master failed over before replicating them), then `request`'s."""
        lost = self.journal.since(request.stream_id, request.writer, last, request.first_seq)
        if lost is None or last >= request.first_seq - 1:
            raise StreamClosedError(request.stream_id)  # not ours to restore: requeued, or before our run
        log.warning("stream %s: seqs %d-%d were lost in a failover; re-appending them",
                    request.stream_id, last + 1, request.first_seq - 1)
        restored = AppendRequest(request.stream_id, request.writer, last + 1, [*lost, *request.events],
                                 begin=request.begin or last == 0)
        keys, args = self._append_call(restored)
        return self._settle(restored, self._append(keys=keys, args=args), restoring=True)

    def _append_call(self, request: AppendRequest) -> tuple[list[str], list[Any]]:
        args: list[Any] = [
            self.ttl, request.writer, "1" if request.begin else "0", request.first_seq, len(request.events),
            self.keys.activity(request.stream_id),
        ]
        fields: list[Any] = []
        for type_, data in request.events:
            args += [type_.value, encode_data(data)]
            if type_ is not EventType.DELTA and type_ in _META_TYPES:
                fields += _meta_fields(type_, data)
        return [self.keys.events(request.stream_id), self.keys.meta(request.stream_id)], args + fields

    def cancel(self, stream_id: str) -> StreamStatus:
        """Cancel a queued stream now, or ask its worker to stop a running one.

        Returns the status after the call; raises StreamNotFoundError."""
        reply = self._cancel(
            keys=[self.keys.events(stream_id), self.keys.meta(stream_id)],
            args=[self.ttl, repr(time.time()), self.keys.activity(stream_id)],
        )
        if not reply:
            raise StreamNotFoundError(stream_id)
        status, control = reply
        if control:
            # Fire and forget: the flag set above reaches the worker on its next write anyway.
            self.redis.spublish(control, stream_id)
        return StreamStatus(status.decode())

    def acquire_lease(self, stream_id: str, lease_seconds: float, writer: str = "") -> Lease:
        """Take the lease of a queued stream before its first write, and index
        it so other workers find it if this one dies; one round trip. The
        Lease says whether it was taken and holds the stream's metadata.

        With `writer`, a stream with nothing written yet is claimed for it
        with its `start` event in the same round trip (Lease.started); a
        rerun, or a stream recorded without its start event, is left for
        the writer's first append. Raises StreamNotFoundError."""
        now = time.time()
        until = _ms(now + lease_seconds)
        # The index first: a lease the index misses could never be reaped.
        keys = [self.keys.meta(stream_id), self.keys.events(stream_id)]
        args = [until, writer, repr(now), self.ttl, self.keys.activity(stream_id), self.control]
        with self.redis.pipeline(transaction=False) as pipe:
            pipe.zadd(self.keys.leases(stream_id), {stream_id: until})
            _evalsha(pipe, self._acquire, keys, args)
            _, reply = pipe.execute(raise_on_error=False)
        if isinstance(reply, redis.exceptions.NoScriptError):
            reply = self._acquire(keys=keys, args=args)
        elif isinstance(reply, Exception):
            raise reply
        taken, flat = reply
        if not taken:
            self.redis.zrem(self.keys.leases(stream_id), stream_id)
        if not flat:
            raise StreamNotFoundError(stream_id)
        meta = {flat[i].decode(): flat[i + 1].decode() for i in range(0, len(flat), 2)}
        if taken == 2:
            self.journal.record(stream_id, writer, 1, [(EventType.START, json.loads(meta["start_data"]))])
        return Lease(bool(taken), meta, started=taken == 2)

    def renew_leases(self, owned: dict[str, str], lease_seconds: float) -> list[str]:
        """Extend the leases of `owned` (stream id -> writer token) in one round
        trip; returns the ids whose lease this writer has lost."""
        until = _ms(time.time() + lease_seconds)
        ids = list(owned)
        if not ids:
            return []
        buckets: dict[str, dict[str, int]] = {}
        for stream_id in ids:
            buckets.setdefault(self.keys.leases(stream_id), {})[stream_id] = until
        with self.redis.pipeline(transaction=False) as pipe:
            for stream_id in ids:
                _evalsha(pipe, self._renew, [self.keys.meta(stream_id)], [owned[stream_id], until])
            for bucket, members in buckets.items():
                pipe.zadd(bucket, members)
            results = pipe.execute(raise_on_error=False)[: len(ids)]
        kept = []
        for stream_id, result in zip(ids, results):
            if isinstance(result, redis.exceptions.NoScriptError):  # Redis restarted: the Script reloads it
                result = self._renew(keys=[self.keys.meta(stream_id)], args=[owned[stream_id], until])
            elif isinstance(result, Exception):
                raise result
            kept.append(result)
        return [stream_id for stream_id, k in zip(ids, kept) if not k]

    def expired_leases(self, limit: int = 50) -> list[str]:
        """Ids of streams whose lease has expired, oldest first (across the
        index's buckets, read in one pipelined round trip)."""
        now = _ms(time.time())
        with self.redis.pipeline(transaction=False) as pipe:
            for bucket in range(LEASE_BUCKETS):
                pipe.zrangebyscore(self.keys.lease_bucket(bucket), "-inf", now, start=0, num=limit, withscores=True)
            replies = pipe.execute()
        expired = sorted((score, member) for reply in replies for member, score in reply)
        return [member.decode() for _, member in expired[:limit]]

    def drop_lease(self, stream_id: str) -> None:
        """Forget a stream's lease (it ended, or it was requeued)."""
        self.redis.zrem(self.keys.leases(stream_id), stream_id)

    def reclaim(self, stream_id: str, reason: str, max_attempts: int, *, force: bool = False) -> tuple[str, int]:
        """Take a stream from a writer that lost (or, with force, gives up)
        its lease. Returns (outcome, attempt); see _RECLAIM."""
        outcome, attempt = self._reclaim(
            keys=[self.keys.events(stream_id), self.keys.meta(stream_id)],
            args=[_ms(time.time()), max_attempts, reason, self.ttl, repr(time.time()), "1" if force else "0",
                  self.keys.activity(stream_id), FAILOVER_SEQ_MARGIN],
        )
        if outcome != b"alive":
            self.drop_lease(stream_id)
        return outcome.decode(), int(attempt)

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
        """The stream's state as the snapshot route returns it: its metadata
        and the assistant message folded from its events (spool/message.py)."""
        meta = self.meta(stream_id)
        folded = fold(self.read(stream_id, 0))
        error = None
        if "error_code" in meta:
            error = {"code": meta["error_code"], "message": meta.get("error_message", "")}
            for key in ("status", "param"):
                if meta.get(f"error_{key}"):
                    error[key] = int(meta["error_status"]) if key == "status" else meta["error_param"]
        return {
            "id": stream_id,
            "status": meta["status"],
            "model": meta.get("model"),
            "text": folded.text,
            "message": folded.message(),
            "last_seq": int(meta.get("last_seq", 0)),
            "finish_reason": meta.get("finish_reason"),
            "usage": json.loads(meta["usage"]) if meta.get("usage") else None,
            "logprobs": folded.logprobs,
            "upstream_model": folded.info.get("model"),
            "system_fingerprint": folded.info.get("system_fingerprint"),
            "service_tier": folded.info.get("service_tier"),
            "error": error,
            "created_at": _float(meta.get("created_at")),
            "started_at": _float(meta.get("started_at")),
            "ended_at": _float(meta.get("ended_at")),
            "cancel_requested": meta.get("cancel_requested") == "1",
            "attempt": int(meta.get("attempt", 1)),
        }


def _append_result(stream_id: str, reply: list[int]) -> AppendResult:
    """The outcome the append script returned; raises for its error codes."""
    code, cancel = reply
    if code == -1:
        raise StreamNotFoundError(stream_id)
    if code < 0:
        raise StreamClosedError(stream_id)
    return AppendResult(int(code), bool(cancel))


# The types that change the stream's metadata (the answer's parts do not).
_META_TYPES = frozenset({EventType.START, EventType.RESET, EventType.DONE, EventType.ERROR, EventType.CANCELLED})


def _meta_fields(type_: EventType, data: dict[str, Any]) -> list[Any]:
    """The metadata an event implies, as flat (field, value) pairs."""
    now = repr(time.time())
    if type_ is EventType.START:
        return ["status", StreamStatus.RUNNING.value, "started_at", now]
    if type_ is EventType.RESET:
        return ["status", StreamStatus.RUNNING.value, "attempt", data["attempt"]]
    if type_ is EventType.DONE:
        usage = json.dumps(data["usage"]) if data.get("usage") else ""
        return ["status", "done", "ended_at", now, "finish_reason", data["finish_reason"], "usage", usage]
    if type_ is EventType.ERROR:
        fields = ["status", "error", "ended_at", now, "error_code", data["code"], "error_message", data["message"]]
        # The upstream's HTTP status and the parameter it refused, when it refused the request.
        for key in ("status", "param"):
            if data.get(key) is not None:
                fields += [f"error_{key}", data[key]]
        return fields
    if type_ is EventType.CANCELLED:
        return ["status", "cancelled", "ended_at", now]
    return []


def _evalsha(pipe: redis.client.Pipeline, script: Script, keys: list[str], args: list[Any]) -> None:
    """Queue `script` on `pipe` by its SHA (the caller retries a NoScriptError
    with the Script, which loads it). Not pipe.evalsha: a Script on a pipeline
    asks SCRIPT EXISTS first every time, and redis-py's cluster pipeline
    refuses its evalsha method, though Redis routes EVALSHA by its keys."""
    pipe.execute_command("EVALSHA", script.sha, len(keys), *keys, *args)


def _ms(seconds: float) -> int:
    return int(seconds * 1000)


def _float(value: str | None) -> float | None:
    return float(value) if value else None
