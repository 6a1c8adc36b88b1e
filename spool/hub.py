"""The TailHub: one reader per process for every follower of a live stream.

A gateway process may serve thousands of followers. Rather than one blocking
XREAD (and one Redis connection) each, a TailHub thread reads for all of them
and hands each entry batch to the followers of that stream.

It reads only the streams that changed. Every script that adds events to a
stream (spool/streams/) also SPUBLISHes the stream's events key on the
stream's own shard channel (Keys.activity, in the stream's slot). The hub
SSUBSCRIBEs to the channel of each stream it follows, on the node serving
that slot (one connection per node; on a single Redis, one), and a listener
per node marks the keys it hears about dirty; the hub issues one
non-blocking XREAD over just the dirty keys at their cursors (on a cluster,
one read script per slot, pipelined by node: spool/streams/reads.py). Sharded pub/sub reaches only the
node that holds the stream: a plain PUBLISH on a cluster is broadcast to
every node. (A blocking XREAD over every followed key re-sent them all for
every few entries: 59% of a gateway's CPU at 2,000 followed streams.)

No entry is missed, though the hub only reads when told to:
- a new follower replays up to `replay_to` itself; the hub reads a newly
  followed key first once its SSUBSCRIBE is confirmed, from that cursor: an
  append before the confirmation is found by that read, one after it is
  announced;
- pub/sub drops messages across a reconnect, so a lost subscription (an
  error, silence past PING_SECONDS + COMMAND_TIMEOUT, a second confirmation
  of one channel: the client resubscribed on its own, or an SUNSUBSCRIBE the
  hub did not ask for: the slot moved to another node) ends every follower
  with HUB_STOPPED, as losing Redis always did: clients resume.

Safety net: every FULL_READ_SECONDS the hub reads every followed key anyway,
busy or idle. Only a writer that does not publish can cause a missed
notification (a worker of an older version during a rolling deploy, a
script edited by hand); its followers then get the entries at most that
late instead of never. One full read costs what every read cost before
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
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field

import redis

from spool.keys import Keys
from spool.redis_client import COMMAND_TIMEOUT, is_cluster, node_of
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
# A subscription silent this long is PINGed; without an answer it is lost.
PING_SECONDS = 5.0
# How often a listener looks up from the socket to see if its hub ended.
LISTEN_POLL = 1.0
# Notifications taken off the socket before they are handed to the hub at once.
LISTEN_BATCH = 256


@dataclass(eq=False)
class Subscription:
    """One follower's inbox. `replay_to` is the hub's cursor (as a seq) when the
    follower joined: the follower reads (after, replay_to] itself."""

    key: bytes
    replay_to: int
    inbox: queue.SimpleQueue = field(default_factory=queue.SimpleQueue)


@dataclass(eq=False)
class _Node:
    """The hub's subscription connection to one node, and what it expects to hear."""

    name: str
    client: redis.Redis  # kept: were it collected, it would close the connection
    pubsub: redis.client.PubSub
    confirmed: set[bytes] = field(default_factory=set)
    unsubscribing: Counter = field(default_factory=Counter)


@dataclass(eq=False)
class _Session:
    """One run of the hub thread and the subscriptions it reads by. `over`
    tells the listeners to close them; `lost` tells the hub it cannot trust them."""

    over: bool = False
    lost: bool = False
    idle_since: float | None = None  # since when nobody follows anything
    nodes: dict[str, _Node] = field(default_factory=dict)
    # channel -> node it was SSUBSCRIBEd on (sent; confirmed or not)
    channels: dict[bytes, str] = field(default_factory=dict)


class TailHub:
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
        session = _Session()
        try:
            self._serve(session)
        except Exception:  # noqa: BLE001  (followers must not wait on a hub that broke)
            log.warning("tail hub lost Redis; ending its followers", exc_info=True)
            with self._lock:
                self._stop_followers()
        finally:
            session.over = True

    def _sync_channels(self, session: _Session) -> None:
        """SSUBSCRIBE the channels of newly followed keys and SUNSUBSCRIBE
        those nobody follows any more, each on its node. Raises RedisError."""
        with self._lock:
            changed = self._membership if session.channels else self._membership | self._subs.keys()
            self._membership = set()
            wanted = {Keys.activity_of(key): key in self._subs for key in changed}
        for channel, follow in wanted.items():
            if not follow and channel in session.channels:
                node = session.nodes[session.channels.pop(channel)]
                node.unsubscribing[channel] += 1
                node.pubsub.sunsubscribe(channel)
            elif follow and channel not in session.channels:
                node = self._node(session, node_of(self._redis, channel) if self._cluster else "")
                session.channels[channel] = node.name
                node.pubsub.ssubscribe(channel)
            elif follow:  # followed again before its channel was unsubscribed
                with self._lock:
                    if channel in session.nodes[session.channels[channel]].confirmed:
                        self._confirmed(channel)

    def _node(self, session: _Session, name: str) -> _Node:
        node = session.nodes.get(name)
        if node is None:
            client = self._pubsub_factory(name)
            node = _Node(name, client, client.pubsub())
            session.nodes[name] = node
            threading.Thread(target=self._listen, args=(node, session), name="spool-tail-listener",
                             daemon=True).start()
        return node

    def _listen(self, node: _Node, session: _Session) -> None:
        """Mark the followed keys announced on `node` dirty, until the session
        is over or the subscription fails."""
        heard = time.monotonic()
        pinged = False
        try:
            while not session.over:
                message = node.pubsub.get_message(timeout=LISTEN_POLL)
                now = time.monotonic()
                if message is None:
                    if not node.pubsub.subscribed:
                        heard = now  # nothing to lose, nothing to hear
                    elif now - heard > PING_SECONDS + COMMAND_TIMEOUT:
                        raise redis.ConnectionError("the subscription stopped answering")
                    elif now - heard > PING_SECONDS and not pinged:
                        node.pubsub.ping()
                        pinged = True
                    continue
                heard, pinged = now, False
                messages = []
                # Drain what already arrived, so the hub is notified once per batch.
                while message is not None and len(messages) < LISTEN_BATCH:
                    messages.append(message)
                    message = node.pubsub.get_message(timeout=0)
                with self._lock:
                    for message in messages:
                        self._heard(node, message)
                    if self._dirty:
                        self._changed.notify()
        except Exception:  # noqa: BLE001  (whatever broke it, the subscription is gone)
            if not session.over:
                log.warning("tail hub lost its subscription on node %r", node.name, exc_info=True)
                with self._lock:
                    session.lost = True
                    self._changed.notify()
        finally:
            node.pubsub.close()

    def _heard(self, node: _Node, message: dict) -> None:
        """Mark the key `message` announces dirty, or note a confirmation;
        raises when it shows notifications were lost. Called holding the lock."""
        kind, channel = message["type"], message["channel"]
        if kind in ("smessage", "message"):
            if message["data"] in self._cursors and message["data"] not in self._unconfirmed:
                self._dirty.add(message["data"])
        elif kind == "ssubscribe":
            if channel in node.confirmed:
                raise redis.ConnectionError("resubscribed: notifications may have been lost")
            node.confirmed.add(channel)
            self._confirmed(channel)
        elif kind == "sunsubscribe":
            node.confirmed.discard(channel)
            if node.unsubscribing[channel] <= 0:
                raise redis.ConnectionError(f"{channel!r} was unsubscribed by the server (its slot moved)")
            node.unsubscribing[channel] -= 1
            if not node.unsubscribing[channel]:
                del node.unsubscribing[channel]

    def _confirmed(self, channel: bytes) -> None:
        """`channel` is subscribed: its key may be read (from the cursor its
        followers left). Called holding the lock."""
        key = channel[: -len(b"activity")] + b"events"
        if key in self._unconfirmed:
            self._unconfirmed.discard(key)
            self._dirty.add(key)
            self._changed.notify()

    def _serve(self, session: _Session) -> None:
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

    def _next_read(self, session: _Session, next_full: float) -> tuple[dict[bytes, bytes] | None, bool]:
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
                keys = self._cursors.keys() if full else self._dirty
                streams = {key: self._cursors[key] for key in keys if key not in self._unconfirmed}
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
                subs = self._subs.get(key)
                if not subs or self._cursors[key] != read_at.get(key):
                    continue
                self._cursors[key] = entries[-1][0]
                for sub in subs:
                    sub.inbox.put(entries)

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

