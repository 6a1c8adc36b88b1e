"""Stream storage in Redis: create, append, cancel, read, and the metadata.

Writes go through Lua scripts (lua/) so each one is atomic: events are added
with explicit entry ids `0-<seq>` together with the metadata they imply, and
a write is accepted only from the stream's current writer. A retried write
that already landed is recognised and reported as success, so writers may
retry freely after a lost reply without duplicating anything.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from enum import IntEnum
from typing import Any

import redis

from spool.announcements import MAX_CARRIED_BYTES
from spool.errors import StreamClosedError, StreamNotFoundError
from spool.events import Event, EventType, StreamStatus, encode_data
from spool.keys import Keys
from spool.streams.journal import Journal, Pending
from spool.streams.leases import Leases
from spool.streams.meta import CHANGES_META, OWNER, STATUS, StreamMeta, created_fields, event_fields
from spool.streams.scripts import Scripts, evalsha, retried

log = logging.getLogger(__name__)

# Entries read per XRANGE page when replaying a stream.
PAGE = 1000


class AppendCode(IntEnum):
    """append.lua's refusals (a reply's first element when negative)."""

    NO_STREAM = -1
    CLOSED = -2  # ended, or not queued when beginning
    OTHER_WRITER = -3
    GAP = -4  # the stream ends before first_seq - 1: a failover lost a tail
    UNCLAIMED = -5  # queued, not claimed: a failover lost the whole run


@dataclass(frozen=True)
class AppendRequest:
    """One append: `events` as seqs first_seq, first_seq+1, ... by `writer`,
    the stream's claimant (its lease claimed it: Leases.acquire)."""

    stream_id: str
    writer: str
    first_seq: int
    events: Sequence[Pending]


@dataclass(frozen=True)
class AppendResult:
    """The stream's last seq after an append, and whether cancel was asked."""

    last_seq: int
    cancel_requested: bool


class StreamStore:
    """The Redis operations on streams, for gateway and worker alike, on a
    single Redis or a Redis Cluster (every script and command touches one
    slot; pipelines may span nodes). Its `leases` (spool/streams/leases.py)
    are how a worker takes, keeps and loses a stream.

    `control` is the shard channel of the worker process using the store
    (Keys.control_channel): the leases it takes record it, so a cancel goes
    to that worker alone."""

    def __init__(self, client: redis.Redis, keys: Keys, ttl: int, control: str = "") -> None:
        self.redis = client
        self.keys = keys
        self.ttl = ttl
        self.scripts = Scripts.register(client)
        self.journal = Journal()
        self.leases = Leases(client, keys, ttl, self.scripts, self.journal, control)

    def create(self, stream_id: str, request: dict[str, Any], owner: str = "",
               pipeline: redis.client.Pipeline | None = None) -> None:
        """Record a new queued stream with the request it answers and, when the
        gateway requires API keys, the hash naming the key that owns it. With
        `pipeline`, the commands join it and the caller executes it."""
        meta = self.keys.meta(stream_id)
        with self.redis.pipeline() if pipeline is None else contextlib.nullcontext(pipeline) as pipe:
            pipe.hset(meta, mapping=created_fields(stream_id, request, owner, time.time()))
            pipe.expire(meta, self.ttl)
            if pipeline is None:
                pipe.execute()

    def delete(self, stream_id: str) -> None:
        """Remove a stream entirely (used when enqueueing it failed)."""
        self.redis.delete(self.keys.meta(stream_id), self.keys.events(stream_id))

    def exists(self, stream_id: str) -> bool:
        """True while the stream's metadata exists (it has not expired)."""
        return bool(self.redis.exists(self.keys.meta(stream_id)))

    def meta(self, stream_id: str) -> StreamMeta:
        """The stream's metadata; raises StreamNotFoundError."""
        raw = self.redis.hgetall(self.keys.meta(stream_id))
        if not raw:
            raise StreamNotFoundError(stream_id)
        return StreamMeta.from_hash(raw)

    def status(self, stream_id: str) -> StreamStatus | None:
        """The stream's status, or None when there is no such stream."""
        raw = self.redis.hget(self.keys.meta(stream_id), STATUS)
        return None if raw is None else StreamStatus(raw.decode())

    def statuses(self, stream_ids: Sequence[str]) -> list[StreamStatus | None]:
        """The status of each stream (None for a missing one), in one round trip."""
        with self.redis.pipeline(transaction=False) as pipe:
            for stream_id in stream_ids:
                pipe.hget(self.keys.meta(stream_id), STATUS)
            replies = pipe.execute()
        return [None if raw is None else StreamStatus(raw.decode()) for raw in replies]

    def owner(self, stream_id: str) -> bytes | None:
        """The owner hash of the key that created the stream, as stored (bytes,
        for a constant-time comparison); None when it has none or is gone."""
        return self.redis.hget(self.keys.meta(stream_id), OWNER)

    def append(
        self,
        stream_id: str,
        writer: str,
        first_seq: int,
        events: Sequence[Pending],
    ) -> AppendResult:
        """Append `events` as seqs first_seq, first_seq+1, ... on behalf of
        `writer`, whose lease claimed the stream. Raises StreamNotFoundError
        if the stream is gone and StreamClosedError if it ended or belongs to
        another writer.
        """
        request = AppendRequest(stream_id, writer, first_seq, events)
        keys, args = self._append_call(request)
        return self._settle(request, self.scripts.append(keys=keys, args=args))

    def append_many(self, requests: Sequence[AppendRequest]) -> list[AppendResult | Exception]:
        """Make several appends in one pipelined round trip (not atomic
        together). Each outcome is its AppendResult, or the exception `append`
        would raise for it; a lost connection raises for all."""
        calls = [self._append_call(request) for request in requests]
        with self.redis.pipeline(transaction=False) as pipe:
            for keys, args in calls:
                # By SHA: a Script on a pipeline would ask SCRIPT EXISTS first, every time.
                evalsha(pipe, self.scripts.append, keys, args)
            replies = pipe.execute(raise_on_error=False)
        outcomes: list[AppendResult | Exception] = []
        for request, (keys, args), reply in zip(requests, calls, replies):
            reply = retried(reply, self.scripts.append, keys, args)
            try:
                outcomes.append(reply if isinstance(reply, Exception) else self._settle(request, reply))
            except (StreamNotFoundError, StreamClosedError) as exc:
                outcomes.append(exc)
        return outcomes

    def _settle(self, request: AppendRequest, reply: list[int], *, restoring: bool = False) -> AppendResult:
        """The outcome of an append script call: recorded in the journal when
        it landed, the lost tail restored first when a failover lost it."""
        code, detail = reply[0], reply[1]
        if code in (AppendCode.GAP, AppendCode.UNCLAIMED) and not restoring:
            return self._restore(request, int(detail), claimed=code == AppendCode.GAP)
        if code < 0:  # this writer is done with the stream: nothing of it to restore
            self.journal.forget(request.stream_id, request.writer)
            if code == AppendCode.NO_STREAM:
                raise StreamNotFoundError(request.stream_id)
            raise StreamClosedError(request.stream_id)
        self.journal.record(request.stream_id, request.writer, request.first_seq, request.events)
        return AppendResult(int(code), bool(detail))

    def _restore(self, request: AppendRequest, last: int, *, claimed: bool) -> AppendResult:
        """Re-append, with their seqs and content, the events this writer had
        acknowledged after seq `last` and the stream no longer holds (its
        master failed over before replicating them), then `request`'s.
        `claimed`: the stream is still this writer's; if not (it is queued
        at `last`), the lost events must open with this writer's claim, which
        its lease takes again, writing the same event."""
        sid, writer = request.stream_id, request.writer
        lost = self.journal.since(sid, writer, last, request.first_seq)
        if lost is None or last >= request.first_seq - 1:
            raise StreamClosedError(sid)  # not ours to restore: requeued, or before our run
        log.warning("stream %s: seqs %d-%d were lost in a failover; re-appending them",
                    sid, last + 1, request.first_seq - 1)
        first_seq = last + 1
        if not claimed:
            if not self._reclaimable(sid, last, lost[0]):
                raise StreamClosedError(sid)  # queued since: requeued, not lost
            lease = self.leases.acquire(sid, self.leases.seconds, writer)
            if lease.claim != lost[0]:
                raise StreamClosedError(sid)  # claimed by another writer meanwhile
            lost, first_seq = lost[1:], first_seq + 1
        restored = AppendRequest(sid, writer, first_seq, [*lost, *request.events])
        keys, args = self._append_call(restored)
        return self._settle(restored, self.scripts.append(keys=keys, args=args), restoring=True)

    def _reclaimable(self, stream_id: str, last: int, first_lost: Pending) -> bool:
        """Whether the lease, taken again now, would write `first_lost` at seq
        last + 1: it is this writer's claim, `start` of a stream at seq 0 or
        the `reset` its requeue prepared (not a reset of its own mid-run)."""
        type_, data = first_lost
        if type_ is EventType.START:
            return last == 0
        if type_ is not EventType.RESET:
            return False
        meta = self.meta(stream_id)
        return data == {"attempt": meta.attempt, "reason": meta.reset_reason or "worker_lost"}

    def _append_call(self, request: AppendRequest) -> tuple[list[str], list[Any]]:
        args: list[Any] = [
            self.ttl, request.writer, request.first_seq, len(request.events),
            self.keys.activity(request.stream_id), MAX_CARRIED_BYTES,
        ]
        fields: list[Any] = []
        for type_, data in request.events:
            args += [type_.value, encode_data(data)]
            if type_ is not EventType.DELTA and type_ in CHANGES_META:
                fields += event_fields(type_, data)
        return [self.keys.events(request.stream_id), self.keys.meta(request.stream_id)], args + fields

    def fail(self, stream_id: str, code: str, message: str) -> bool:
        """End a queued stream no worker holds with an `error` event {code,
        message}; False when it is not queued or a worker holds its lease.
        Raises StreamNotFoundError."""
        data = {"code": code, "message": message}
        ended = self.scripts.fail(
            keys=[self.keys.events(stream_id), self.keys.meta(stream_id)],
            args=[self.ttl, self.keys.activity(stream_id), encode_data(data), *event_fields(EventType.ERROR, data)],
        )
        if ended is None:
            raise StreamNotFoundError(stream_id)
        return bool(ended)

    def cancel(self, stream_id: str) -> StreamStatus:
        """Cancel a queued stream now, or ask its worker to stop a running one.

        Returns the status after the call; raises StreamNotFoundError."""
        reply = self.scripts.cancel(
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

    def read(self, stream_id: str, after: int, upto: int | None = None) -> Iterator[Event]:
        """Stored events with after < seq (<= upto), in pages, oldest first."""
        key = self.keys.events(stream_id)
        end = "+" if upto is None else f"0-{upto}"
        start = after + 1
        while True:
            entries = self.redis.xrange(key, f"0-{start}", end, count=PAGE)
            for entry_id, fields in entries:
                yield Event.from_entry(entry_id, fields)
            if len(entries) < PAGE:
                return
            start = int(entries[-1][0][2:]) + 1
