"""Writing generations' events to their streams, with delta coalescing.

The first delta of an answer is written at once (time to first token matters
most). Later ones are buffered: consecutive text-like events of one kind
(`delta`, `reasoning`, `refusal`, or `tool_call_delta` of one call) join
into one, and an event of another kind closes the run first, so seq order is
the upstream's order. The buffered events wait, and one Flusher per worker process writes
every generation's buffered text each `interval` in a single pipelined round
trip: at hundreds of concurrent answers, one Redis round trip per delta per
generation was most of a worker's CPU (docs/benchmarks.md). Events that end
or restart an answer (`finish`, `reset`) are written by the generation
itself, synchronously. The stream is already the writer's: its lease
claimed it (spool/streams/leases.py).

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

from spool.events import TEXT_FIELD, EventType
from spool.streams import AppendRequest, AppendResult, StreamStore
from worker.metrics import REDIS_ERRORS

log = logging.getLogger(__name__)

Batch = list[tuple[EventType, dict[str, Any]]]
# What a run of buffered text belongs to: its type, and for tool_call_delta the call's index.
RunKind = tuple[EventType, Any]
_TEXT_RUN: RunKind = (EventType.DELTA, None)

FIRST_BACKOFF = 0.05
MAX_BACKOFF = 1.0


class RedisOutageError(Exception):
    """Redis stayed unreachable for longer than the outage window."""


class Publisher:
    """Appends one generation's events in seq order on behalf of `writer`.

    Only the generation's own thread calls the public methods; the Flusher
    writes buffered text through `take_write` and `settle`. A failure of a
    write made by the Flusher is raised by the generation's next call.
    """

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
        self._buffer: list[str] = []  # the open run of text-like fragments
        self._run: RunKind = _TEXT_RUN  # what the fragments in _buffer belong to
        self._tail: Batch = []  # events waiting behind the buffer (closed runs, others)
        self._inflight: Batch | None = None
        self._error: Exception | None = None  # from a write the Flusher made
        self._failing_since: float | None = None
        self._retry_at = 0.0
        self._backoff = FIRST_BACKOFF
        self._lock = threading.Lock()  # guards the fields above
        self._writing = threading.Lock()  # one write at a time

    def delta(self, text: str) -> None:
        """Add answer text: the first at once, the rest within `interval`."""
        self._raise_pending()
        with self._lock:
            if self._run is not _TEXT_RUN:
                self._close_run(_TEXT_RUN)
            self._buffer.append(text)
            now = not self.wrote_text or self._interval <= 0
            self.wrote_text = True
        if now and self._writing.acquire(blocking=False):
            self._write_held()

    def add(self, type_: EventType, data: dict[str, Any]) -> None:
        """Add any other part of the answer (reasoning, refusal, tool calls,
        logprobs), written like text: the first at once, the rest within
        `interval`; text-like fragments of one kind join into one event."""
        if type_ is EventType.DELTA:
            self.delta(data["text"])
            return
        self._raise_pending()
        field = TEXT_FIELD.get(type_)
        with self._lock:
            if field is None:
                self._close_run(_TEXT_RUN)
                self._tail.append((type_, data))
            else:
                run = (type_, data.get("index"))
                if run != self._run:
                    self._close_run(run)
                self._buffer.append(data[field])
            now = not self.wrote_text or self._interval <= 0
            self.wrote_text = True
        if now and self._writing.acquire(blocking=False):
            self._write_held()

    def reset(self, attempt: int, reason: str) -> None:
        """Start the answer over: drop everything unsent and write `reset`."""
        with self._lock:
            self._buffer = []
            self._tail = []
            self.wrote_text = False
            self._tail.append((EventType.RESET, {"attempt": attempt, "reason": reason}))
        self._drain()

    def finish(self, type_: EventType, data: dict[str, Any]) -> None:
        """Write everything buffered and then the terminal event."""
        with self._lock:
            self._close_run(_TEXT_RUN)
            self._tail.append((type_, data))
        self._drain()

    def take_write(self) -> AppendRequest | None:
        """For the Flusher: the buffered text as a write, if one is due and no
        other write is under way. The caller must `settle` it."""
        with self._lock:
            if not (self._buffer or self._tail or self._inflight) or self._error is not None:
                return None
            if self._failing_since is not None and time.monotonic() < self._retry_at:
                return None
        if not self._writing.acquire(blocking=False):
            return None
        request = self._form_request()
        if request is None:
            self._writing.release()
        return request

    def settle(self, outcome: AppendResult | Exception) -> None:
        """For the Flusher: record how a write taken with `take_write` went."""
        try:
            self._record(outcome)
        except Exception as exc:  # raised again in the generation's thread
            with self._lock:
                self._error = exc
        finally:
            self._writing.release()

    def _raise_pending(self) -> None:
        if self._error is not None:
            raise self._error

    def _drain(self) -> None:
        """Write until nothing is left, waiting out Redis outages."""
        while True:
            self._raise_pending()
            with self._lock:
                if not (self._buffer or self._tail or self._inflight):
                    return
                wait = self._retry_at - time.monotonic() if self._failing_since is not None else 0
            if wait > 0:
                time.sleep(wait)
            self._writing.acquire()
            self._write_held()

    def _write_held(self) -> None:
        """Write the next batch now; the caller holds `_writing`."""
        try:
            request = self._form_request()
            if request is None:
                return
            try:
                outcome: AppendResult | Exception = self._store.append(
                    request.stream_id, request.writer, request.first_seq, request.events
                )
            except (redis.ConnectionError, redis.TimeoutError) as exc:
                outcome = exc
            self._record(outcome)
        finally:
            self._writing.release()

    def _form_request(self) -> AppendRequest | None:
        """The in-flight batch as a write (forming it from what is buffered if
        there is none), or None when there is nothing to write."""
        with self._lock:
            if self._inflight is None:
                self._close_run(self._run)
                self._inflight = self._tail or None
                self._tail = []
            if self._inflight is None:
                return None
            return AppendRequest(self.stream_id, self.writer, self._next_seq, self._inflight)

    def _close_run(self, run: RunKind) -> None:
        """Move the open run of fragments, joined into one event, behind the
        events waiting, and open `run`. Called holding the lock."""
        if self._buffer:
            type_, index = self._run
            joined = "".join(self._buffer)
            data = {"text": joined} if index is None else {"index": index, "arguments": joined}
            self._tail.append((type_, data))
            self._buffer = []
        self._run = run

    def _record(self, outcome: AppendResult | Exception) -> None:
        """Apply a write's outcome; raises what the generation must see."""
        if isinstance(outcome, (redis.ConnectionError, redis.TimeoutError)):
            self._note_failure(outcome)
            return
        if isinstance(outcome, Exception):
            raise outcome
        with self._lock:
            self._next_seq += len(self._inflight or ())
            self._inflight = None
            self._failing_since = None
            self.cancel_requested = self.cancel_requested or outcome.cancel_requested

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
    """One thread per worker process that writes every publisher's buffered
    text each `interval`, all of it in one pipelined round trip. With no
    publisher it sleeps instead of ticking: an idle worker stays idle."""

    def __init__(self, store: StreamStore, interval: float) -> None:
        self._store = store
        self._interval = interval
        self._publishers: set[Publisher] = set()
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._run, name="spool-flusher", daemon=True)
        self._stopped = threading.Event()
        self._active = threading.Event()  # set while any publisher is registered

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stopped.set()
        self._active.set()

    def add(self, publisher: Publisher) -> None:
        with self._lock:
            self._publishers.add(publisher)
            self._active.set()

    def remove(self, publisher: Publisher) -> None:
        with self._lock:
            self._publishers.discard(publisher)
            if not self._publishers:
                self._active.clear()

    def flush(self) -> int:
        """Write what every publisher has buffered; returns how many writes."""
        with self._lock:
            publishers = list(self._publishers)
        taken = [(p, w) for p in publishers if (w := p.take_write()) is not None]
        if not taken:
            return 0
        try:
            outcomes = self._store.append_many([write for _, write in taken])
        except (redis.ConnectionError, redis.TimeoutError) as exc:
            outcomes = [exc] * len(taken)
        except Exception as exc:  # each generation sees it on its next write
            log.exception("pipelined write failed")
            outcomes = [exc] * len(taken)
        for (publisher, _), outcome in zip(taken, outcomes):
            publisher.settle(outcome)
        return len(taken)

    def _run(self) -> None:
        # The wait comes after each flush, so under load (a flush waits its
        # turn of every running generation) ticks stretch and each carries
        # more tokens. Fixed-pace ticks measured ~10% more CPU per token and
        # a longer resume tail for a shorter gap (docs/benchmarks.md, round two).
        while self._active.wait() and not self._stopped.wait(self._interval):
            self.flush()
