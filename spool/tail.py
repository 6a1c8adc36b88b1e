"""Following a stream: its stored events, replayed then live, for one client.

Live events come from the process's TailHub (spool/hub.py), which reads for
every follower at once.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator

from spool.hub import HUB_STOPPED, Subscription, TailHub
from spool.events import Event
from spool.idle_clock import CLOCK, IDLE
from spool.streams import StreamStore
from spool.wire import Encoder

__all__ = ["HUB_STOPPED", "Subscription", "TailHub", "events", "follow", "wait_for_end"]

log = logging.getLogger(__name__)


def events(
    store: StreamStore,
    hub: TailHub,
    stream_id: str,
    after: int,
    idle_timeout: float,
) -> Iterator[Event | None]:
    """Yield the stream's events with seq > after, replayed then live, each
    exactly once and in order, up to and including the terminal event. Yields
    None after each `idle_timeout` seconds without an event (after checking
    the stream itself for events the hub has not delivered).

    Ends early (without a terminal event) if the hub lost Redis, so the
    client resumes. The quiet intervals come from the process's IdleClock
    (spool/idle_clock.py), not from a timeout on each wait.
    """
    sub = hub.subscribe(store.keys.events(stream_id), after)
    watch = CLOCK.watch(sub.inbox, idle_timeout)
    next_seq = after + 1
    try:
        if sub.replay_to >= next_seq:
            for event in store.read(stream_id, after, upto=sub.replay_to):
                yield event
                next_seq = event.seq + 1
                if event.is_terminal:
                    return
        while True:
            watch.waiting()
            batch = sub.inbox.get()
            if batch is IDLE:
                if not watch.quiet():
                    continue
                # A quiet interval: read the stream directly once, so a
                # follower never depends on the hub's thread alone (a stalled
                # hub, or a write whose announcement was lost, costs the
                # client one interval, not the rest of its stream).
                missed = list(store.read(stream_id, next_seq - 1))
                if missed:
                    log.warning("stream %s: %d events the tail hub had not delivered after %.0f s; read directly",
                                stream_id, len(missed), idle_timeout)
                for event in missed:
                    yield event
                    next_seq = event.seq + 1
                    if event.is_terminal:
                        return
                if not missed:
                    yield None
                continue
            if batch is HUB_STOPPED:
                return
            for entry_id, fields in batch:
                event = Event.from_entry(entry_id, fields)
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
        CLOCK.unwatch(watch)
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
    position: int | None = None,
) -> Iterator[bytes]:
    """The stream's events with seq > after, encoded by `encoder` (one wire
    format, spool/wire.py), with heartbeats. The one follow loop of every format.

    Until the first event, each quiet interval also reports the stream's
    place in the queue (`queue_position()`, None once it left the queue), so
    a client can tell waiting from hanging, when the encoder reports it; so
    does the start, with `position` when the caller knows it (a stream it
    just queued) instead of asking. `ended`: the stream is terminal and
    `after` is at its end, so nothing can follow (answered at once).

    Everything it needs comes in as arguments: it runs after the request
    context is gone.
    """
    yield encoder.preamble
    if ended:
        return
    if encoder.wants_history and after > 0:
        for event in store.read(stream_id, 0, upto=after):
            encoder.observe(event)
    waiting = after == 0 and encoder.reports_queue
    if waiting and position is None:
        position = queue_position()
    if waiting and position is not None:
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
