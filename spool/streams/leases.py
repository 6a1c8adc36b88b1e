"""Leases: a worker's hold on the stream it generates, kept in the stream's
metadata and indexed so another worker finds it when it expires.

A worker takes a queued stream's lease before its first write (`acquire`),
which claims the stream for the worker's writer token with its first event
(`start`, or `reset` on a rerun): the one way a stream gets a writer. It
renews the lease while it runs (`renew`), and every worker looks for leases that
expired (`expired`) and takes those streams back (`reclaim`): requeued to run
again, or ended once their attempts are used up. worker/leases.py drives it.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from enum import Enum, IntEnum

import redis

from spool.errors import StreamNotFoundError
from spool.events import EventType
from spool.keys import LEASE_BUCKETS, Keys
from spool.streams.journal import Journal, Pending
from spool.streams.meta import StreamMeta
from spool.streams.scripts import Scripts, evalsha, retried

# Seqs a rerun skips when its stream's master failed over during the lost
# run: more events than a replica can lag behind (a second of replication
# lag is ~50 events at the Flusher's 20 ms ticks).
FAILOVER_SEQ_MARGIN = 100_000


class LeaseGrant(IntEnum):
    """acquire.lua's answer."""

    REFUSED = 0  # not queued: cancelled, ended, or another worker has it
    TAKEN = 1  # the lease only (no writer token given)
    CLAIMED = 2  # taken, and the stream claimed for the writer with its first event


class Reclaim(str, Enum):
    """reclaim.lua's outcome for a stream whose lease expired (or was given up)."""

    REQUEUE = "requeue"  # run it again; the attempt is the next one
    FAILED = "failed"  # attempts used up: ended with an error event
    CANCELLED = "cancelled"  # a cancel was pending: ended cancelled
    ALIVE = "alive"  # its lease was renewed meanwhile
    GONE = "gone"  # expired, ended, or not leased


@dataclass(frozen=True)
class Lease:
    """The outcome of `acquire`: its grant, the stream's metadata as it was
    just before (its status says why when not taken), and when claimed, the
    event that claimed it (at seq meta.last_seq + 1)."""

    grant: LeaseGrant
    meta: StreamMeta
    claim: Pending | None = None

    @property
    def taken(self) -> bool:
        return self.grant is not LeaseGrant.REFUSED

    @property
    def claimed(self) -> bool:
        """The stream is the writer's: its first event is written."""
        return self.grant is LeaseGrant.CLAIMED


class Leases:
    """The lease operations of one store (its client, keys, scripts, journal)."""

    def __init__(self, client: redis.Redis, keys: Keys, ttl: int, scripts: Scripts, journal: Journal,
                 control: str = "") -> None:
        self.redis = client
        self.keys = keys
        self.ttl = ttl
        self.scripts = scripts
        self.journal = journal
        self.control = control
        # The lease a failover's restore takes again (StreamStore._restore):
        # as long as this process's last.
        self.seconds = 10.0

    def acquire(self, stream_id: str, lease_seconds: float, writer: str = "") -> Lease:
        """Take the lease of a queued stream before its first write, and index
        it so other workers find it if this one dies; one round trip. The
        Lease says whether it was taken and holds the stream's metadata.

        With `writer`, the stream is also claimed for it in the same round
        trip, with its first event: `start` on a first run, `reset` {attempt,
        reason} on a rerun (Lease.claim). Raises StreamNotFoundError."""
        self.seconds = lease_seconds
        now = time.time()
        until = _ms(now + lease_seconds)
        # The index first: a lease the index misses could never be reaped.
        keys = [self.keys.meta(stream_id), self.keys.events(stream_id)]
        args = [until, writer, repr(now), self.ttl, self.keys.activity(stream_id), self.control, stream_id]
        with self.redis.pipeline(transaction=False) as pipe:
            pipe.zadd(self.keys.leases(stream_id), {stream_id: until})
            evalsha(pipe, self.scripts.acquire, keys, args)
            _, reply = pipe.execute(raise_on_error=False)
        reply = retried(reply, self.scripts.acquire, keys, args)
        if isinstance(reply, Exception):
            raise reply
        grant, flat = LeaseGrant(reply[0]), reply[1]
        if grant is LeaseGrant.REFUSED:
            self.redis.zrem(self.keys.leases(stream_id), stream_id)
        if not flat:
            raise StreamNotFoundError(stream_id)
        meta = StreamMeta.from_hash({flat[i]: flat[i + 1] for i in range(0, len(flat), 2)})
        if grant is not LeaseGrant.CLAIMED:
            return Lease(grant, meta)
        claim = (EventType(reply[2].decode()), json.loads(reply[3]))
        self.journal.record(stream_id, writer, meta.last_seq + 1, [claim])
        return Lease(grant, meta, claim)

    def renew(self, owned: dict[str, str], lease_seconds: float) -> list[str]:
        """Extend the leases of `owned` (stream id -> writer token) in one round
        trip; returns the ids whose lease this writer has lost."""
        until = _ms(time.time() + lease_seconds)
        ids = list(owned)
        if not ids:
            return []
        buckets: dict[str, dict[str, int]] = {}
        for stream_id in ids:
            buckets.setdefault(self.keys.leases(stream_id), {})[stream_id] = until
        calls = [([self.keys.meta(stream_id)], [owned[stream_id], until]) for stream_id in ids]
        with self.redis.pipeline(transaction=False) as pipe:
            for keys, args in calls:
                evalsha(pipe, self.scripts.renew, keys, args)
            for bucket, members in buckets.items():
                pipe.zadd(bucket, members)
            results = pipe.execute(raise_on_error=False)[: len(ids)]
        lost = []
        for stream_id, (keys, args), result in zip(ids, calls, results):
            result = retried(result, self.scripts.renew, keys, args)
            if isinstance(result, Exception):
                raise result
            if not result:
                lost.append(stream_id)
        return lost

    def expired(self, limit: int = 50) -> list[str]:
        """Ids of streams whose lease has expired, oldest first (across the
        index's buckets, read in one pipelined round trip)."""
        now = _ms(time.time())
        with self.redis.pipeline(transaction=False) as pipe:
            for bucket in range(LEASE_BUCKETS):
                pipe.zrangebyscore(self.keys.lease_bucket(bucket), "-inf", now, start=0, num=limit, withscores=True)
            replies = pipe.execute()
        expired = sorted((score, member) for reply in replies for member, score in reply)
        return [member.decode() for _, member in expired[:limit]]

    def prepare_rerun(self, stream_id: str, reason: str) -> bool:
        """Before a queued stream no worker holds runs again (the reconciler
        requeues its job), make its next lease write a `reset` past every seq
        a lost run may have served, as `reclaim` does after a failover; see
        rerun.lua. False when it is not queued or a worker holds its lease.
        Raises StreamNotFoundError."""
        marked = self.scripts.rerun(
            keys=[self.keys.events(stream_id), self.keys.meta(stream_id)],
            args=[reason, FAILOVER_SEQ_MARGIN, repr(time.time()), self.ttl, self.keys.activity(stream_id)],
        )
        if marked is None:
            raise StreamNotFoundError(stream_id)
        return bool(marked)

    def drop(self, stream_id: str) -> None:
        """Forget a stream's lease (it ended, or it was requeued)."""
        self.redis.zrem(self.keys.leases(stream_id), stream_id)

    def reclaim(self, stream_id: str, reason: str, max_attempts: int, *, force: bool = False) -> tuple[Reclaim, int]:
        """Take a stream from a writer that lost (or, with force, gives up)
        its lease. Returns (outcome, attempt); see reclaim.lua."""
        outcome, attempt = self.scripts.reclaim(
            keys=[self.keys.events(stream_id), self.keys.meta(stream_id)],
            args=[_ms(time.time()), max_attempts, reason, self.ttl, repr(time.time()), "1" if force else "0",
                  self.keys.activity(stream_id), FAILOVER_SEQ_MARGIN],
        )
        outcome = Reclaim(outcome.decode())
        if outcome is not Reclaim.ALIVE:
            self.drop(stream_id)
        return outcome, int(attempt)


def _ms(seconds: float) -> int:
    return int(seconds * 1000)
