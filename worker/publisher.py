"""Writing one generation's events to its stream, with delta coalescing.

The first delta is written at once (time to first token matters most); later
ones are buffered and written at most every `interval` seconds, by the
generation itself when a chunk arrives late enough, or else by the shared
Flusher thread.

Redis may be away for a while (a restart, a failover). Text keeps buffering
meanwhile and writes are retried with backoff, for up to `outage_window`
seconds. A batch, once formed, is retried exactly as it was: its seqs and
contents are fixed, so if a write landed but its reply was lost, the store
recognises the retry and nothing is duplicated or lost.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Any

import redis

from spool.errors import SpoolError
from spool.events import EventType
from spool.store import StreamStore
from worker.metrics import REDIS_ERRORS

log = logging.getLogger(__name__)

Batch = list[tuple[EventType, dict[str, Any]]]

FIRST_BACKOFF = 0.05
MAX_BACKOFF = 1.0


class RedisOutageError(Exception):
    """Redis stayed unreachable for longer than the outage window."""


class Publisher:
    """Appends one generation's events in seq order on behalf of `writer`."""

    def __init__(
        self,
        store: StreamStore,
        stream_id: str,
        writer: str,
        *,
        first_seq: int,
        interval: float,
        outage_window: float,
    ) -> None:
        self.stream_id = stream_id
        self.writer = writer
        self.cancel_requested = False
        self.wrote_text = False  # since the last start or reset
        self._store = store
        self._interval = interval
        self._outage_window = outage_window
        self._next_seq = first_seq
        self._buffer: list[str] = []
        self._tail: Batch = []  # non-delta events waiting behind the buffer
        self._inflight: Batch | None = None
        self._begun = False
        self._last_write = 0.0
        self._failing_since: float | None = None
        self._retry_at = 0.0
        self._backoff = FIRST_BACKOFF
        self._lock = threading.Lock()  # guards the fields above
        self._writing = threading.Lock()  # one write at a time

    def begin(self, type_: EventType, data: dict[str, Any]) -> None:
        """Claim the queued stream with its first event (`start` or `reset`).
        Raises StreamClosedError if it is no longer queued."""
        self._tail.append((type_, data))
        self._drain(begin=True)
        self._begun = True

    def delta(self, text: str) -> None:
        """Add answer text; written now or within `interval`."""
        with self._lock:
            self._buffer.append(text)
            # The first text of an answer goes at once: it sets time to first token.
            due = not self.wrote_text or self._due()
            self.wrote_text = True
        if due:
            self._try_write()

    def reset(self, attempt: int, reason: str) -> None:
        """Start the answer over: drop unsent text and write `reset`."""
        with self._lock:
            self._buffer = []
            self.wrote_text = False
            self._tail.append((EventType.RESET, {"attempt": attempt, "reason": reason}))
        self._drain()

    def flush_due(self) -> None:
        """Write buffered text whose interval (or retry backoff) has passed."""
        with self._lock:
            due = (self._buffer or self._inflight) and self._due()
        if due:
            self._try_write()

    def finish(self, type_: EventType, data: dict[str, Any]) -> None:
        """Write everything buffered and then the terminal event."""
        with self._lock:
            self._tail.append((type_, data))
        self._drain()

    def _due(self) -> bool:
        now = time.monotonic()
        if self._failing_since is not None:
            return now >= self._retry_at
        return now - self._last_write >= self._interval

    def _drain(self, *, begin: bool = False) -> None:
        """Write until nothing is left, waiting out Redis outages."""
        while True:
            with self._lock:
                if not (self._buffer or self._tail or self._inflight):
                    return
                wait = self._retry_at - time.monotonic() if self._failing_since is not None else 0
            if wait > 0:
                time.sleep(wait)
            self._try_write(blocking=True, begin=begin)

    def _try_write(self, *, blocking: bool = False, begin: bool = False) -> None:
        if not self._writing.acquire(blocking=blocking):
            return  # another thread is writing; this text goes with its next batch
        try:
            with self._lock:
                if self._inflight is None:
                    self._inflight = self._form_batch()
                batch = self._inflight
            if not batch:
                with self._lock:
                    self._inflight = None
                return
            try:
                result = self._store.append(self.stream_id, self.writer, self._next_seq, batch, begin=begin)
            except (redis.ConnectionError, redis.TimeoutError) as exc:
                self._note_failure(exc)
                return
            with self._lock:
                self._next_seq += len(batch)
                self._inflight = None
                self._failing_since = None
                self._last_write = time.monotonic()
                self.cancel_requested = self.cancel_requested or result.cancel_requested
        finally:
            self._writing.release()

    def _form_batch(self) -> Batch:
        batch: Batch = [(EventType.DELTA, {"text": "".join(self._buffer)})] if self._buffer else []
        self._buffer = []
        batch += self._tail
        self._tail = []
        return batch

    def _note_failure(self, exc: Exception) -> None:
        REDIS_ERRORS.inc()
        now = time.monotonic()
        with self._lock:
            if self._failing_since is None:
                self._failing_since = now
                self._backoff = FIRST_BACKOFF
            else:
                self._backoff = min(MAX_BACKOFF, self._backoff * 2)
            backoff = self._backoff
            self._retry_at = now + backoff
            down_for = now - self._failing_since
        if down_for > self._outage_window:
            raise RedisOutageError(f"stream {self.stream_id}: Redis unreachable for {down_for:.0f}s") from exc
        log.warning("stream %s: write failed (%s); retrying in %.2fs", self.stream_id, exc, backoff)


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
                except (RedisOutageError, SpoolError) as exc:
                    # The generation's own next write meets the same and ends it.
                    log.warning("stream %s: deferred write failed: %s", publisher.stream_id, exc)
                except Exception:
                    log.exception("stream %s: deferred write failed", publisher.stream_id)
