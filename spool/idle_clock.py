"""One clock that tells followers when they have waited a while for nothing.

A follower waits on its inbox for the hub's next batch, and after a quiet
interval it must wake anyway: to send a heartbeat, and to read its stream
itself in case the hub missed something (spool/tail.py). A wait with a
timeout did both, but under gevent each such wait arms and cancels a timer,
and a follower waits once per event: ~8 µs of the gateway's CPU per event
per client (docs/benchmarks.md, third pass). Instead, followers wait without
a timeout, and this clock, one thread for the whole process, puts IDLE on
the inbox of every follower that has waited for its interval.

The clock is not the hub's thread: a hub that stalls still leaves its
followers their quiet-interval reads. Its thread runs only while something
is watched, so an idle process stays idle.
"""

from __future__ import annotations

import threading
import time
from typing import Any

# Put on a follower's inbox once it has waited its interval.
IDLE = object()

# The clock ticks at a quarter of the shortest interval it watches, within these bounds.
MIN_TICK = 0.01
MAX_TICK = 1.0


class Watch:
    """One inbox the clock watches; the follower calls `waiting` each time it
    starts to wait on the inbox and asks `quiet` when it takes IDLE."""

    __slots__ = ("inbox", "interval", "since", "idle_at")

    def __init__(self, inbox: Any, interval: float) -> None:
        self.inbox = inbox
        self.interval = interval
        self.since = time.monotonic()  # when the follower last started to wait; its own
        self.idle_at = 0.0  # when the clock last put IDLE

    def waiting(self) -> None:
        """The follower waits for its next batch: its quiet interval starts
        now (as a wait with a timeout would have started its timer)."""
        self.since = time.monotonic()

    def quiet(self) -> bool:
        """Whether the follower's current wait has lasted a whole interval.
        False for an IDLE put while it was busy (sending to a slow client,
        say), taken in a later, shorter wait."""
        return time.monotonic() - self.since >= self.interval


class IdleClock:
    """Puts IDLE on a watched inbox once per `interval` of waiting (late by
    at most one tick)."""

    def __init__(self, name: str = "spool-idle-clock") -> None:
        self._name = name  # its thread's
        self._lock = threading.Lock()
        self._changed = threading.Condition(self._lock)
        self._watches: set[Watch] = set()
        self._thread: threading.Thread | None = None

    def watch(self, inbox: Any, interval: float) -> Watch:
        """Start watching `inbox` (anything with `put`)."""
        watch = Watch(inbox, interval)
        with self._lock:
            self._watches.add(watch)
            self._changed.notify()  # a shorter interval may need a faster tick
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._run, name=self._name, daemon=True)
                self._thread.start()
        return watch

    def unwatch(self, watch: Watch) -> None:
        """Stop watching (the follower ended)."""
        with self._lock:
            self._watches.discard(watch)

    @property
    def watched(self) -> int:
        """How many inboxes the clock watches now."""
        with self._lock:
            return len(self._watches)

    def _run(self) -> None:
        with self._lock:
            while self._watches:
                now = time.monotonic()
                shortest = MAX_TICK * 4
                for watch in self._watches:
                    if now - max(watch.since, watch.idle_at) >= watch.interval:
                        watch.idle_at = now
                        watch.inbox.put(IDLE)
                    shortest = min(shortest, watch.interval)
                self._changed.wait(min(MAX_TICK, max(MIN_TICK, shortest / 4)))
            self._thread = None


# The process's clock: every follower in a process shares it.
CLOCK = IdleClock()
