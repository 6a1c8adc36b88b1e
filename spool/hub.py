"""The TailHub: one reader per process for every follower of a live stream.

A gateway process may serve thousands of followers. Rather than one blocking
XREAD (and one Redis connection) each, a TailHub thread reads for all of them
and hands each entry batch to the followers of that stream.

It reads only the streams that changed, and most of the time none: every
append announces its stream, with the events it added, on the stream's shard
channel (spool/announcements.py), and the hub's listeners
(spool/hub_channels.py) hand events that continue a stream's cursor straight
to its followers. They mark the other announced keys dirty (a gap, a bare
key from a cancel or a claim); the hub issues one non-blocking XREAD over
just the dirty keys at their cursors (on a cluster, one read script per
slot, pipelined by node: spool/streams/reads.py). (A blocking XREAD over every followed key re-sent them
all for every few entries: 59% of a gateway's CPU at 2,000 followed streams.)

No entry is missed, though the hub only reads when told to:
- a new follower replays up to `replay_to` itself; the hub reads a newly
  followed key once its SSUBSCRIBE is confirmed, from that cursor (a full
  read may come sooner): an append before the confirmation is found by that
  read, one after it is announced;
- a lost subscription (spool/hub_channels.py says when) ends every follower
  with HUB_STOPPED, as losing Redis always did: clients resume.

Safety net: every FULL_READ_SECONDS the hub reads every followed key anyway,
busy or idle, its subscription confirmed or not. Only a writer that does
not publish can cause a missed notification (a worker of an older version
during a rolling deploy, a script edited by hand), or a confirmation the
listener never heard; the followers then get the entries at most that late
instead of never. One full read costs what every read cost before
(~4 ms of the gateway's CPU at 2,000 keys), so once per 5 s is noise; it
also keeps a lost pool connection from going unnoticed on an idle hub.

After a read that returned entries the hub waits a moment, longer the more
streams had entries (at most BATCH_WAIT_MAX), so that one read collects the
notifications of many streams.

Written against `threading`; under gevent's monkey-patching the hub and its
listeners are greenlets and the followers' queues are cooperative.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import redis

from spool.hub_channels import ChannelListening, Session
from spool.redis_client import is_cluster
from spool.streams.reads import read_streams

log = logging.getLogger(__name__)

# Put on a follower's queue when the hub lost Redis or the process is shutting
# down: the follower ends its response (without a terminal event) so the
# client resumes, perhaps on another gateway.
HUB_STOPPED = object()

# The pause after a read that returned entries: per stream that had some, and at most.
BATCH_WAIT_PER_STREAM = 50e-6
BATCH_WAIT_MAX = 0.025
# Every followed key is read this often whether or not it was announced.
FULL_READ_SECONDS = 5.0
# How long a hub with no followers keeps its subscriptions before it ends.
LINGER_SECONDS = 30.0


@dataclass(eq=False)
class Subscription:
    """One follower's inbox. `replay_to` is the hub's cursor (as a seq) when the
    follower joined: the follower reads (after, replay_to] itself."""

    key: bytes
    replay_to: int
    inbox: queue.SimpleQueue = field(default_factory=queue.SimpleQueue)


class TailHub(ChannelListening):
    """Shares per-node subscriptions and one reader among all followers in this process.

    `client` reads the streams (a Redis or a RedisCluster); `pubsub_factory`
    gives a fresh client for one node's subscription, by node name
    (spool.redis_client.pubsub_factory; a single Redis has one node, '')."""

    def __init__(
        self,
        client: redis.Redis,
        pubsub_factory: Callable[[str], redis.Redis],
        full_read_seconds: float = FULL_READ_SECONDS,
        linger_seconds: float = LINGER_SECONDS,
    ) -> None:
        self._redis = client
        self._pubsub_factory = pubsub_factory
        self._cluster = is_cluster(client)
        self._full_read_seconds = full_read_seconds
        self._linger_seconds = linger_seconds
        self._lock = threading.Lock()
        # Notified when a key turns dirty, the subscription is lost or the hub stops.
        self._changed = threading.Condition(self._lock)
        self._subs: dict[bytes, set[Subscription]] = {}
        self._cursors: dict[bytes, bytes] = {}
        self._dirty: set[bytes] = set()
        # Keys that gained their first follower or lost their last one since
        # the hub last (un)subscribed their channels.
        self._membership: set[bytes] = set()
        # Followed keys whose channel's subscription is not confirmed yet: not read.
        self._unconfirmed: set[bytes] = set()
        self._thread: threading.Thread | None = None
        self._stopped = False
        self._closed = False

    def subscribe(self, key: str, after: int) -> Subscription:
        """Start following `key` from just after seq `after`."""
        bkey = key.encode()
        with self._lock:
            if bkey in self._cursors:
                cursor = self._cursors[bkey]
                sub = Subscription(bkey, int(cursor[2:]))
            else:
                self._cursors[bkey] = b"0-%d" % after
                sub = Subscription(bkey, after)
            if self._closed:
                sub.inbox.put(HUB_STOPPED)
                return sub
            if bkey not in self._subs:
                self._membership.add(bkey)
                self._unconfirmed.add(bkey)
            self._subs.setdefault(bkey, set()).add(sub)
            # Whatever was appended after replay_to is read from the cursor.
            self._dirty.add(bkey)
            self._changed.notify()
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._run, name="spool-tail-hub", daemon=True)
                self._thread.start()
        return sub

    def unsubscribe(self, sub: Subscription) -> None:
        """Stop delivering to `sub`; forget the stream when nobody follows it
        (its channel is unsubscribed on the hub's next turn)."""
        with self._lock:
            subs = self._subs.get(sub.key)
            if subs is None:
                return
            subs.discard(sub)
            if not subs:
                del self._subs[sub.key]
                del self._cursors[sub.key]
                self._dirty.discard(sub.key)
                self._unconfirmed.discard(sub.key)
                self._membership.add(sub.key)
                if not self._subs:
                    self._changed.notify()  # the hub starts its linger now

    def stop(self) -> None:
        """End the hub thread (tests and shutdown)."""
        with self._lock:
            self._stopped = True
            self._changed.notify()

    def close_all(self) -> None:
        """End every follower now and refuse new ones (the process is shutting
        down: clients resume on another gateway at once)."""
        with self._lock:
            self._closed = True
            self._stop_followers()
        self.stop()

    @property
    def followed(self) -> int:
        """How many streams the hub is following now."""
        with self._lock:
            return len(self._subs)

    def _run(self) -> None:
        session = Session()
        try:
            self._serve(session)
        except Exception:  # noqa: BLE001  (followers must not wait on a hub that broke)
            log.warning("tail hub lost Redis; ending its followers", exc_info=True)
            with self._lock:
                self._stop_followers()
        finally:
            session.over = True

    def _serve(self, session: Session) -> None:
        """Read the dirty keys (all keys every full_read_seconds) and dispatch,
        until the hub stops, loses Redis or nobody has followed anything for
        linger_seconds."""
        next_full = time.monotonic()  # the first read covers every key
        try:
            while True:
                with self._lock:
                    streams, full = self._next_read(session, next_full)
                if streams is None:
                    return
                if full:
                    next_full = time.monotonic() + self._full_read_seconds
                try:
                    self._sync_channels(session)
                    reply = self._read(streams) if streams else []
                except redis.RedisError:
                    log.warning("tail hub lost Redis; ending %d followed streams", len(streams), exc_info=True)
                    with self._lock:
                        self._stop_followers()
                    return
                self._dispatch(reply, streams)
                if reply:
                    time.sleep(min(BATCH_WAIT_MAX, BATCH_WAIT_PER_STREAM * len(reply)))
        finally:
            session.over = True  # each listener closes its node's subscription

    def _read(self, streams: dict[bytes, bytes]) -> list:
        """XREAD `streams` at their cursors: one command on a single Redis, one
        script per slot on a cluster (spool/streams/reads.py)."""
        return read_streams(self._redis, streams, cluster=self._cluster)

    def _next_read(self, session: Session, next_full: float) -> tuple[dict[bytes, bytes] | None, bool]:
        """Wait (holding the lock) for something to read. Returns the keys and
        cursors to read (None when the hub should end) and whether that is
        every followed key."""
        while True:
            if self._stopped:
                return None, False
            if session.lost:
                self._stop_followers()
                return None, False
            now = time.monotonic()
            if not self._subs:
                # Kept a while: a gateway whose clients come one at a time
                # would otherwise reconnect and resubscribe for each of them.
                session.idle_since = session.idle_since or now
                if now - session.idle_since >= self._linger_seconds:
                    self._thread = None
                    return None, False
                self._changed.wait(timeout=session.idle_since + self._linger_seconds - now)
                continue
            session.idle_since = None
            full = now >= next_full
            if full or self._dirty or self._membership:
                if full:
                    # Unconfirmed keys too: a confirmation the listener never
                    # hears must cost a follower one interval, not its stream.
                    streams = dict(self._cursors)
                else:
                    streams = {key: self._cursors[key] for key in self._dirty if key not in self._unconfirmed}
                self._dirty = set()
                return streams, full
            self._changed.wait(timeout=next_full - time.monotonic())

    def _dispatch(self, reply: list, read_at: dict[bytes, bytes]) -> None:
        """Hand each stream's entries to its followers. `read_at` holds the
        cursors the read used: a stream whose cursor changed meanwhile (its
        last follower left and a new one joined at an earlier seq) is skipped,
        or the newcomer would miss the entries between the two cursors (the
        newcomer marked it dirty, so the next read starts at its cursor)."""
        with self._lock:
            for key, entries in reply:
                if not self._subs.get(key) or self._cursors[key] != read_at.get(key):
                    continue
                self._deliver(key, entries)

    def _stop_followers(self) -> None:
        """End every follower with HUB_STOPPED. Called holding the lock."""
        for subs in self._subs.values():
            for sub in subs:
                sub.inbox.put(HUB_STOPPED)
        self._subs.clear()
        self._cursors.clear()
        self._dirty.clear()
        self._unconfirmed.clear()
        self._thread = None

