"""Following live streams: one blocking XREAD per process for every follower.

A gateway process may serve thousands of followers. Rather than one blocking
XREAD (and one Redis connection) each, a TailHub thread issues a single
XREAD over every followed stream and hands each entry batch to the followers
of that stream. New followers wake the hub through a private "wake" stream
that is part of every XREAD: an XADD there is seen even if it lands before
the XREAD starts, so a wake-up is never lost.

The cost of one XREAD grows with the number of keys it names, and a busy
hub would re-send them all for every few entries. So after a read that
returned at once, the hub waits a moment, longer the more streams it follows
(at most BATCH_WAIT_MAX), and collects more entries per read.

Written against `threading`; under gevent's monkey-patching the hub is a
greenlet and the followers' queues are cooperative.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import redis

from spool.store import StoredEvent, StreamStore, stored_event
from spool.wire import WireFormat, encode, encode_info

log = logging.getLogger(__name__)

# Put on a follower's queue when the hub lost Redis or the process is shutting
# down: the follower ends its response (without a terminal event) so the
# client resumes, perhaps on another gateway.
HUB_STOPPED = object()

# The pause between two reads that returned entries: per followed stream, and at most.
BATCH_WAIT_PER_STREAM = 50e-6
BATCH_WAIT_MAX = 0.025


@dataclass(eq=False)
class Subscription:
    """One follower's inbox. `replay_to` is the hub's cursor (as a seq) when the
    follower joined: the follower reads (after, replay_to] itself."""

    key: bytes
    replay_to: int
    inbox: queue.SimpleQueue = field(default_factory=queue.SimpleQueue)


class TailHub:
    """Shares one blocking XREAD among all followers in this process."""

    def __init__(
        self,
        client: redis.Redis,
        blocking_client_factory: Callable[[], redis.Redis],
        wake_key: str,
        block_ms: int = 5000,
    ) -> None:
        self._redis = client
        self._blocking_factory = blocking_client_factory
        self._wake_key = wake_key.encode() + b":" + uuid.uuid4().hex.encode()
        self._block_ms = block_ms
        self._lock = threading.Lock()
        self._subs: dict[bytes, set[Subscription]] = {}
        self._cursors: dict[bytes, bytes] = {}
        self._wake_cursor = b"0-0"
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
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._run, name="spool-tail-hub", daemon=True)
                self._thread.start()
        self._wake()
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

    def stop(self) -> None:
        """End the hub thread (tests and shutdown)."""
        self._stopped = True
        self._wake()

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

    def _wake(self) -> None:
        try:
            with self._redis.pipeline(transaction=False) as pipe:
                pipe.xadd(self._wake_key, {b"w": b"1"}, maxlen=16, approximate=False)
                pipe.expire(self._wake_key, 3600)
                pipe.execute()
        except redis.RedisError:
            # The hub sees the same outage and fails its followers.
            log.warning("could not wake the tail hub", exc_info=True)

    def _run(self) -> None:
        conn = self._blocking_factory()
        try:
            while not self._stopped:
                with self._lock:
                    if not self._subs:
                        self._thread = None
                        return
                    streams = dict(self._cursors)
                streams[self._wake_key] = self._wake_cursor
                try:
                    reply = conn.xread(streams, block=self._block_ms)
                except redis.RedisError:
                    log.warning("tail hub lost Redis; ending %d followed streams", len(streams) - 1, exc_info=True)
                    self._stop_followers()
                    return
                self._dispatch(reply, streams)
                if reply:
                    time.sleep(min(BATCH_WAIT_MAX, BATCH_WAIT_PER_STREAM * len(streams)))
        finally:
            conn.close()

    def _dispatch(self, reply: list, read_at: dict[bytes, bytes]) -> None:
        """Hand each stream's entries to its followers. `read_at` holds the
        cursors the read used: a stream whose cursor changed meanwhile (its
        last follower left and a new one joined at an earlier seq) is skipped,
        or the newcomer would miss the entries between the two cursors."""
        with self._lock:
            for key, entries in reply:
                last_id = entries[-1][0]
                if key == self._wake_key:
                    self._wake_cursor = last_id
                    continue
                subs = self._subs.get(key)
                if not subs or self._cursors[key] != read_at.get(key):
                    continue
                self._cursors[key] = last_id
                for sub in subs:
                    sub.inbox.put(entries)

    def _stop_followers(self) -> None:
        with self._lock:
            for subs in self._subs.values():
                for sub in subs:
                    sub.inbox.put(HUB_STOPPED)
            self._subs.clear()
            self._cursors.clear()
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
    fmt: WireFormat,
    heartbeat_interval: float,
    queue_position: Callable[[], int | None] = lambda: None,
) -> Iterator[bytes]:
    """The stream's events with seq > after encoded in `fmt`, with heartbeats.

    Until the first event, each quiet interval also reports the stream's
    place in the queue (`queue_position()`, None once it left the queue), so
    a client can tell waiting from hanging.

    Everything it needs comes in as arguments: it runs after the request
    context is gone.
    """
    yield fmt.preamble
    waiting = after == 0
    position = queue_position() if waiting else None
    if position is not None:
        yield encode_info(fmt, {"type": "queued", "queue_position": position})
    for event in events(store, hub, stream_id, after, heartbeat_interval):
        if event is not None:
            waiting = False
            yield encode(fmt, event.seq, event.type, event.data)
            continue
        position = queue_position() if waiting else None
        if position is None:
            yield fmt.heartbeat
        else:
            yield encode_info(fmt, {"type": "queued", "queue_position": position})


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
