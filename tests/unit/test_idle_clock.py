"""The IdleClock: followers wait without a timeout, and the clock wakes the quiet ones."""

from __future__ import annotations

import queue
import threading
import time

from spool.idle_clock import IDLE, IdleClock


def _clock_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name == "test-idle-clock"]


def test_a_quiet_inbox_gets_idle_once_per_interval():
    clock = IdleClock()
    inbox: queue.SimpleQueue = queue.SimpleQueue()
    started = time.monotonic()
    watch = clock.watch(inbox, 0.05)
    assert inbox.get(timeout=5) is IDLE
    first = time.monotonic() - started
    assert inbox.get(timeout=5) is IDLE
    second = time.monotonic() - started
    clock.unwatch(watch)
    assert 0.05 <= first < 2 and second - first >= 0.04  # never early, and not twice at once
    assert watch.quiet()


def test_a_follower_that_waits_briefly_gets_no_idle():
    clock = IdleClock()
    inbox: queue.SimpleQueue = queue.SimpleQueue()
    watch = clock.watch(inbox, 1.0)
    until = time.monotonic() + 0.3
    while time.monotonic() < until:
        watch.waiting()
        time.sleep(0.01)
    clock.unwatch(watch)
    assert inbox.empty()


def test_idle_taken_in_a_later_wait_is_not_quiet():
    # An IDLE put while the follower was busy (sending to a slow client),
    # taken in a wait that has only just started: not a quiet interval.
    clock = IdleClock()
    watch = clock.watch(queue.SimpleQueue(), 0.05)
    assert watch.inbox.get(timeout=5) is IDLE
    watch.waiting()
    clock.unwatch(watch)
    assert not watch.quiet()


def test_the_clock_thread_runs_only_while_something_is_watched():
    clock = IdleClock("test-idle-clock")
    watches = [clock.watch(queue.SimpleQueue(), 0.05) for _ in range(3)]
    assert clock.watched == 3 and _clock_threads()
    for watch in watches:
        clock.unwatch(watch)
    for thread in _clock_threads():
        thread.join(timeout=5)
    assert clock.watched == 0 and not _clock_threads()
    # And it starts again for the next watch.
    watch = clock.watch(queue.SimpleQueue(), 0.05)
    assert watch.inbox.get(timeout=5) is IDLE
    clock.unwatch(watch)
