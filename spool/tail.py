"""Following live streams: one TailHub per process reads for every follower.

A gateway process may serve thousands of followers. Rather than one blocking
XREAD (and one Redis connection) each, a TailHub thread reads for all of them
and hands each entry batch to the followers of that stream.

It reads only the streams that changed. Every script that adds events to a
stream (spool/store.py) also PUBLISHes the stream's events key on the activity
channel (Keys.activity_channel). The hub keeps one connection SUBSCRIBEd to
it; a listener thread marks the followed keys it hears about dirty, and the
hub issues one non-blocking XREAD over just the dirty keys at their cursors.
(A blocking XREAD over every followed key re-sent them all for every few
entries: 59% of a gateway's CPU at 2,000 followed streams.)

No entry is missed, though the hub only reads when told to:
- it reads nothing before its SUBSCRIBE is confirmed, and its first read
  covers every followed key: an append before the confirmation is found by
  that read, one after it is announced;
- a new follower replays up to `replay_to` itself and marks its key dirty,
  so the hub's next read starts at that cursor;
- pub/sub drops messages across a reconnect, so a lost subscription (an
  error, silence past PING_SECONDS + COMMAND_TIMEOUT, or a second subscribe
  confirmation: the client resubscribed on its own) ends every follower with
  HUB_STOPPED, as losing Redis always did: clients resume.

Safety net: every FULL_READ_SECONDS the hub reads every followed key anyway,
busy or idle. Only a writer that does not publish can cause a missed
notification (a worker of an older version during a rolling deploy, a
script edited by hand); its followers then get the entries at most that
late instead of never. One full read costs what every read cost before
(~4 ms of the gateway's CPU at 2,000 keys), so once per 5 s is noise; it
also keeps a lost pool connection from going unnoticed on an idle hub.

After a read that returned entries the hub waits a moment, longer the more
streams had entries (at most BATCH_WAIT_MAX), so that one read collects the
notifications of many streams. Measured with 2,000 followers and workers
that write in 20 ms ticks, the wait hardly matters (the ticks batch the
notifications already); it is there for writers that do not batch.

Written against `threading`; under gevent's monkey-patching the hub and its
listener are greenlets and the followers' queues are cooperative.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import redis

from spool.redis_client import COMMAND_TIMEOUT
from spool.store import StoredEvent, StreamStore, stored_event
from spool.wire import Encoder

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
# How long a hub with no followers keeps its subscription before it ends.
LINGER_SECONDS = 30.0
# A subscription silent this long is PINGed; without an answer it is lost.
PING_SECONDS = 5.0
# How often the listener looks up from the socket to see if its hub ended.
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
class _Session:
    """One run of the hub thread and the subscription it reads by. `over`
    tells the listener to close it; `lost` tells the hub it cannot trust it."""

    over: bool = False
    lost: bool = False
    idle_since: float | None = None  # since when nobody follows anything
    # The subscription's client: were it collected, it would close the
    # connection under the subscription.
    client: redis.Redis | None = None


class TailHub:
    """Shares one subscription and one reader among all followers in this process."""

    def __init__(
        self,
        client: redis.Redis,
        pubsub_client_factory: Callable[[], redis.Redis],
        channel: str,
        full_read_seconds: float = FULL_READ_SECONDS,
        linger_seconds: float = LINGER_SECONDS,
    ) -> None:
        self._redis = client
        self._pubsub_factory = pubsub_client_factory
        self._channel = channel.encode()
        self._full_read_seconds = full_read_seconds
        self._linger_seconds = linger_seconds
        self._lock = threading.Lock()
        # Notified when a key turns dirty, the subscription is lost or the hub stops.
        self._changed = threading.Condition(self._lock)
        self._subs: dict[bytes, set[Subscription]] = {}
        self._cursors: dict[bytes, bytes] = {}
        self._dirty: set[bytes] = set()
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
            self._subs.setdefault(bkey, set()).add(sub)
            # Whatever was appended after replay_to is read from the cursor.
            self._dirty.add(bkey)
            self._changed.notify()
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._run, name="spool-tail-hub", daemon=True)
                self._thread.start()
        return sub

    def unsubscribe(self, sub: Subscription) -> None:
        """Stop delivering to `sub`; forget the stream when nobody follows it."""
        with self._lock:
            subs = self._subs.get(sub.key)
            if subs is None:
                return
            subs.discard(sub)
            if not subs:
                del self._subs[sub.key]
                del self._cursors[sub.key]
                self._dirty.discard(sub.key)
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
            pubsub = self._subscribe(session)
        except Exception:  # noqa: BLE001  (followers must not wait on a hub that never started)
            log.warning("tail hub could not subscribe; ending its followers", exc_info=True)
            with self._lock:
                self._stop_followers()
            return
        threading.Thread(target=self._listen, args=(pubsub, session), name="spool-tail-listener", daemon=True).start()
        try:
            self._serve(session)
        finally:
            session.over = True

    def _subscribe(self, session: _Session) -> redis.client.PubSub:
        """The activity channel's subscription, once Redis confirmed it."""
        session.client = self._pubsub_factory()
        pubsub = session.client.pubsub()
        try:
            pubsub.subscribe(self._channel)
            deadline = time.monotonic() + COMMAND_TIMEOUT
            while time.monotonic() < deadline:
                message = pubsub.get_message(timeout=deadline - time.monotonic())
                if message is not None and message["type"] == "subscribe":
                    return pubsub
            raise redis.TimeoutError(f"no confirmation of SUBSCRIBE {self._channel!r}")
        except BaseException:
            pubsub.close()
            raise

    def _listen(self, pubsub: redis.client.PubSub, session: _Session) -> None:
        """Mark the followed keys announced on the channel dirty, until the
        session is over or the subscription fails."""
        heard = time.monotonic()
        pinged = False
        try:
            while not session.over:
                message = pubsub.get_message(timeout=LISTEN_POLL)
                now = time.monotonic()
                if message is None:
                    if now - heard > PING_SECONDS + COMMAND_TIMEOUT:
                        raise redis.ConnectionError("the subscription stopped answering")
                    if now - heard > PING_SECONDS and not pinged:
                        pubsub.ping()
                        pinged = True
                    continue
                heard, pinged = now, False
                keys = []
                # Drain what already arrived, so the hub is notified once per batch.
                while message is not None and len(keys) < LISTEN_BATCH:
                    if message["type"] == "message":
                        keys.append(message["data"])
                    elif message["type"] == "subscribe":
                        raise redis.ConnectionError("resubscribed: notifications may have been lost")
                    message = pubsub.get_message(timeout=0)
                with self._lock:
                    self._dirty.update(key for key in keys if key in self._cursors)
                    if self._dirty:
                        self._changed.notify()
        except Exception:  # noqa: BLE001  (whatever broke it, the subscription is gone)
            if not session.over:
                log.warning("tail hub lost its subscription", exc_info=True)
                with self._lock:
                    session.lost = True
                    self._changed.notify()
        finally:
            pubsub.close()

    def _serve(self, session: _Session) -> None:
        """Read the dirty keys (all keys every full_read_seconds) and dispatch,
        until the hub stops, loses Redis or nobody has followed anything for
        linger_seconds."""
        next_full = time.monotonic()  # the first read covers every key
        while True:
            with self._lock:
                streams, full = self._next_read(session, next_full)
            if streams is None:
                return
            if full:
                next_full = time.monotonic() + self._full_read_seconds
            try:
                reply = self._redis.xread(streams)
            except redis.RedisError:
                log.warning("tail hub lost Redis; ending %d followed streams", len(streams), exc_info=True)
                with self._lock:
                    self._stop_followers()
                return
            self._dispatch(reply, streams)
            if reply:
                time.sleep(min(BATCH_WAIT_MAX, BATCH_WAIT_PER_STREAM * len(reply)))

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
            if full or self._dirty:
                keys = self._cursors.keys() if full else self._dirty
                streams = {key: self._cursors[key] for key in keys}
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
        self._thread = None


def events(
    store: StreamStore,
    hub: TailHub,
    stream_id: str,
    after: int,
    idle_timeout: float,
) -> Iterator[StoredEvent | None]:
    """Yield the stream's events with seq > after, replayed then live, each
    exactly once and in order, up to and including the terminal event. Yields
    None after each `idle_timeout` seconds without an event.

    Ends early (without a terminal event) if the hub lost Redis, so the
    client resumes.
    """
    sub = hub.subscribe(store.keys.events(stream_id), after)
    next_seq = after + 1
    try:
        if sub.replay_to >= next_seq:
            for event in store.read(stream_id, after, upto=sub.replay_to):
                yield event
                next_seq = event.seq + 1
                if event.is_terminal:
                    return
        while True:
            try:
                batch = sub.inbox.get(timeout=idle_timeout)
            except queue.Empty:
                yield None
                continue
            if batch is HUB_STOPPED:
                return
            for entry_id, fields in batch:
                event = stored_event(entry_id, fields)
                if event.seq < next_seq:
                    if event.is_terminal:
                        # The cursor was past the end: nothing more will come.
                        return
                    continue
                yield event
                next_seq = event.seq + 1
                if event.is_terminal:
                    return
    finally:
        hub.unsubscribe(sub)


def follow(
    store: StreamStore,
    hub: TailHub,
    stream_id: str,
    after: int,
    encoder: Encoder,
    heartbeat_interval: float,
    queue_position: Callable[[], int | None] = lambda: None,
    *,
    ended: bool = False,
) -> Iterator[bytes]:
    """The stream's events with seq > after, encoded by `encoder` (one wire
    format, spool/wire.py), with heartbeats. The one follow loop of every format.

    Until the first event, each quiet interval also reports the stream's
    place in the queue (`queue_position()`, None once it left the queue), so
    a client can tell waiting from hanging. `ended`: the stream is terminal
    and `after` is at its end, so nothing can follow (answered at once).

    Everything it needs comes in as arguments: it runs after the request
    context is gone.
    """
    yield encoder.preamble
    if ended:
        return
    if encoder.wants_history and after > 0:
        for event in store.read(stream_id, 0, upto=after):
            encoder.observe(event)
    waiting = after == 0
    position = queue_position() if waiting else None
    if position is not None:
        yield encoder.queued(position)
    for event in events(store, hub, stream_id, after, heartbeat_interval):
        if event is not None:
            waiting = False
            out = encoder.encode(event)
            if out:
                yield out
            if encoder.finished or event.is_terminal:
                return
            continue
        position = queue_position() if waiting else None
        yield encoder.heartbeat if position is None else encoder.queued(position)
    # The hub lost Redis (or the process is stopping) before the end.
    out = encoder.interrupted()
    if out:
        yield out


def wait_for_end(store: StreamStore, hub: TailHub, stream_id: str, after: int, timeout: float) -> bytes | None:
    """The terminal event's type once the stream ends, or None after `timeout`."""
    deadline = time.monotonic() + timeout
    stream = events(store, hub, stream_id, after, idle_timeout=timeout)
    try:
        for event in stream:
            if event is not None and event.is_terminal:
                return event.type
            if time.monotonic() >= deadline:
                return None
        return None
    finally:
        stream.close()
