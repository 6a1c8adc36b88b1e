"""The TailHub's subscriptions: hearing which followed streams changed.

Every script that adds events to a stream (spool/streams/) also SPUBLISHes
on the stream's own shard channel (Keys.activity, in the stream's slot): the
stream's events key, and for an append the events themselves
(spool/announcements.py). The hub (spool/hub.py) SSUBSCRIBEs to the channel
of each stream it follows, on the node serving that slot (one connection per
node; on a single Redis, one), and a listener thread per node hands carried
events that continue a stream's cursor to its followers, and marks the other
keys it hears about dirty for the hub's next read. Sharded pub/sub reaches only the
node that holds the stream: a plain PUBLISH on a cluster is broadcast to
every node.

Pub/sub drops messages across a reconnect, so a lost subscription (an
error, silence past PING_SECONDS + COMMAND_TIMEOUT, a second confirmation of
one channel: the client resubscribed on its own, or an SUNSUBSCRIBE the hub
did not ask for: the slot moved to another node) marks the session lost, and
the hub ends every follower with HUB_STOPPED: clients resume.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field

import redis

from spool.announcements import Entries, announced_key, read_announcement
from spool.keys import Keys
from spool.redis_client import COMMAND_TIMEOUT, node_of

log = logging.getLogger(__name__)

# A subscription silent this long is PINGed; without an answer it is lost.
PING_SECONDS = 5.0
# How often a listener looks up from the socket to see if its hub ended.
LISTEN_POLL = 1.0
# Notifications taken off the socket before they are handed to the hub at once.
LISTEN_BATCH = 256


@dataclass(eq=False)
class Node:
    """The hub's subscription connection to one node, and what it expects to hear."""

    name: str
    client: redis.Redis  # kept: were it collected, it would close the connection
    pubsub: redis.client.PubSub
    confirmed: set[bytes] = field(default_factory=set)
    unsubscribing: Counter = field(default_factory=Counter)


@dataclass(eq=False)
class Session:
    """One run of the hub thread and the subscriptions it reads by. `over`
    tells the listeners to close them; `lost` tells the hub it cannot trust them."""

    over: bool = False
    lost: bool = False
    idle_since: float | None = None  # since when nobody follows anything
    nodes: dict[str, Node] = field(default_factory=dict)
    # channel -> node it was SSUBSCRIBEd on (sent; confirmed or not)
    channels: dict[bytes, str] = field(default_factory=dict)


class ChannelListening:
    """The pub/sub half of the TailHub: keeps one subscription per node in
    line with the followed keys, and turns what the listeners hear into
    delivered events or dirty keys. A base of TailHub, working on the hub's state under the hub's lock
    (the attributes below are the hub's)."""

    _lock: threading.Lock
    _changed: threading.Condition  # notified when a key turns dirty or the session is lost
    _redis: redis.Redis
    _cluster: bool
    _pubsub_factory: Callable[[str], redis.Redis]
    _subs: dict
    _cursors: dict[bytes, bytes]
    _dirty: set[bytes]
    _membership: set[bytes]
    _unconfirmed: set[bytes]

    def _sync_channels(self, session: Session) -> None:
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

    def _node(self, session: Session, name: str) -> Node:
        node = session.nodes.get(name)
        if node is None:
            client = self._pubsub_factory(name)
            node = Node(name, client, client.pubsub())
            session.nodes[name] = node
            threading.Thread(target=self._listen, args=(node, session), name="spool-tail-listener",
                             daemon=True).start()
        return node

    def _listen(self, node: Node, session: Session) -> None:
        """Hear the announcements of followed keys on `node` (`_heard`), until
        the session is over or the subscription fails."""
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
                # Drain what already arrived, so the hub is notified once per
                # batch. Read no message the batch has no room for: one taken
                # off the socket and not heard is gone (a lost confirmation
                # leaves its key unconfirmed, never read).
                messages = [message]
                while len(messages) < LISTEN_BATCH:
                    message = node.pubsub.get_message(timeout=0)
                    if message is None:
                        break
                    messages.append(message)
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

    def _heard(self, node: Node, message: dict) -> None:
        """Deliver the events `message` carries, or mark the key it announces
        dirty, or note a confirmation; raises when it shows notifications
        were lost. Called holding the lock."""
        kind, channel = message["type"], message["channel"]
        if kind in ("smessage", "message"):
            try:
                key, first, entries = read_announcement(message["data"])
            except ValueError:
                key, first, entries = announced_key(message["data"]), 0, []
                log.warning("an unreadable announcement on %r: its stream is read instead", channel)
            if key in self._cursors and key not in self._unconfirmed and not self._took(key, first, entries):
                self._dirty.add(key)
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

    def _took(self, key: bytes, first: int, entries: Entries) -> bool:
        """Hand announced entries to `key`'s followers if they continue from
        its cursor; False when the stream must be read instead (a bare key, or
        a gap: announcements heard before the subscription was confirmed).
        Entries up to the cursor are ones the followers have. Called holding
        the lock."""
        if not entries:
            return False
        cursor = int(self._cursors[key][2:])
        if first > cursor + 1:
            return False
        fresh = entries[cursor + 1 - first:]
        if fresh:
            self._deliver(key, fresh)
        return True

    def _deliver(self, key: bytes, entries: Entries) -> None:
        """Move `key`'s cursor past `entries` and hand them to each of its
        followers (the listener's and the hub's reads alike). Called holding
        the lock."""
        self._cursors[key] = entries[-1][0]
        for sub in self._subs[key]:
            sub.inbox.put(entries)

    def _confirmed(self, channel: bytes) -> None:
        """`channel` is subscribed: its key may be read (from the cursor its
        followers left). Called holding the lock."""
        key = channel[: -len(b"activity")] + b"events"
        if key in self._unconfirmed:
            self._unconfirmed.discard(key)
            self._dirty.add(key)
            self._changed.notify()
