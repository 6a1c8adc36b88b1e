"""Writing one generation's events to its stream, with delta coalescing.

The first delta is written at once (time to first token matters most); later
ones are buffered and written at most every `interval` seconds, by the
generation itself when a chunk arrives late enough, or else by the shared
Flusher thread. Writes are retried through short Redis outages: every write
carries explicit seqs, so a retry can never duplicate an event.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Any

import redis

from spool.events import EventType
from spool.store import StreamStore
from worker.metrics import REDIS_ERRORS

log = logging.getLogger(__name__)


class Publisher:
    """Appends one generation's events in seq order on behalf of `writer`."""

    def __init__(self, store: StreamStore, stream_id: str, writer: str, interval: float, retry_window: float) -> None:
        self.stream_id = stream_id
        self.cancel_requested = False
        self._store = store
        self._writer = writer
        self._interval = interval
        self._retry_window = retry_window
        self._next_seq = 1
        self._buffer: list[str] = []
        self._flushed_once = False
        self._last_write = 0.0
        self._lock = threading.Lock()

    @property
    def last_seq(self) -> int:
        return self._next_seq - 1

    def start(self, data: dict[str, Any]) -> None:
        """Claim the queued stream and write its `start` event.
        Raises StreamClosedError if the stream is no longer queued."""
        with self._lock:
            self._write([(EventType.START, data)], begin=True)

    def delta(self, text: str) -> None:
        """Add answer text; written now or within `interval`."""
        with self._lock:
            self._buffer.append(text)
            if not self._flushed_once or time.monotonic() - self._last_write >= self._interval:
                self._flushed_once = True
                self._write_buffer([])

    def flush_due(self) -> None:
        """Write buffered text whose interval has passed (called by the Flusher)."""
        with self._lock:
            if self._buffer and time.monotonic() - self._last_write >= self._interval:
                self._write_buffer([])

    def finish(self, type_: EventType, data: dict[str, Any]) -> None:
        """Write any buffered text and the terminal event, in one round trip."""
        with self._lock:
            self._write_buffer([(type_, data)])

    def _write_buffer(self, tail: list[tuple[EventType, dict[str, Any]]]) -> None:
        events = [(EventType.DELTA, {"text": "".join(self._buffer)})] if self._buffer else []
        self._buffer = []
        if events or tail:
            self._write(events + tail)

    def _write(self, events: list[tuple[EventType, dict[str, Any]]], *, begin: bool = False) -> None:
        deadline = time.monotonic() + self._retry_window
        delay = 0.05
        while True:
            try:
                result = self._store.append(self.stream_id, self._writer, self._next_seq, events, begin=begin)
                break
            except (redis.ConnectionError, redis.TimeoutError) as exc:
                REDIS_ERRORS.inc()
                if time.monotonic() + delay > deadline:
                    raise
                log.warning("stream %s: write failed (%s); retrying in %.2fs", self.stream_id, exc, delay)
                time.sleep(delay)
                delay = min(delay * 2, 1.0)
        self._next_seq += len(events)
        self._last_write = time.monotonic()
        self.cancel_requested = self.cancel_requested or result.cancel_requested


class Flusher:
    """One thread per worker process that writes publishers' late buffers."""

    def __init__(self, interval: float) -> None:
        self._interval = interval
        self._publishers: set[Publisher] = set()
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._run, name="spool-flusher", daemon=True)
        self._stopped = threading.Event()

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stopped.set()

    def add(self, publisher: Publisher) -> None:
        with self._lock:
            self._publishers.add(publisher)

    def remove(self, publisher: Publisher) -> None:
        with self._lock:
            self._publishers.discard(publisher)

    def _run(self) -> None:
        while not self._stopped.wait(self._interval):
            with self._lock:
                publishers = list(self._publishers)
            for publisher in publishers:
                try:
                    publisher.flush_due()
                except Exception:
                    # The generation's own next write raises the same error and ends it.
                    log.warning("stream %s: deferred flush failed", publisher.stream_id, exc_info=True)
