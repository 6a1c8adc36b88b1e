"""Running one generation: upstream chunks in, stream events out."""

from __future__ import annotations

import json
import logging
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from enum import Enum
from typing import Any

from spool.errors import StreamClosedError, StreamNotFoundError, UpstreamError
from spool.events import EventType, StreamStatus
from spool.logs import bind
from spool.settings import Settings
from spool.streams import StreamStore
from worker.leases import LeaseKeeper
from worker.metrics import UPSTREAM_ERRORS, GenerationWatch
from worker.publisher import Flusher, Publisher, RedisOutageError
from worker.upstream import Upstream, UpstreamCall

log = logging.getLogger(__name__)

# Upstream failures worth a rerun: the answer may well succeed next time.
RERUNNABLE = frozenset({"upstream_truncated", "upstream_timeout", "upstream_unreachable", "upstream_error"})


class GenerationFailed(Exception):
    """Raised after an `error` event was written, so RQ records the job as failed."""


class StartFailed(Exception):
    """The stream's lease could not be taken (Redis away, refusing writes, or
    a script failing): nothing was written, the stream is still queued."""


# The error event of a stream whose stored request cannot be read.
UNREADABLE = {"code": "internal_error", "message": "the stored request could not be read"}


class RunOutcome(str, Enum):
    """What run_generation returns: how the stream ended, or why it did not here."""

    DONE = StreamStatus.DONE.value
    ERROR = StreamStatus.ERROR.value
    CANCELLED = StreamStatus.CANCELLED.value
    # Stopped without ending the stream (shutdown, or its lease was taken):
    # another worker carries on.
    RELEASED = "released"
    TAKEN = "taken"  # not queued when this worker came: another worker has it
    MISSING = "missing"  # expired before a worker took it

    @classmethod
    def of(cls, status: StreamStatus) -> RunOutcome:
        """The outcome of finding the stream in `status` instead of running it."""
        return cls(status.value) if status.is_terminal else cls.TAKEN

    @property
    def is_terminal(self) -> bool:
        """The stream ended (with the status of the same name)."""
        return self in (RunOutcome.DONE, RunOutcome.ERROR, RunOutcome.CANCELLED)


class Generation:
    """A running answer that other threads may cancel or release."""

    def __init__(self, stream_id: str) -> None:
        self.stream_id = stream_id
        self._cancelled = threading.Event()
        self._released = threading.Event()
        self._call: UpstreamCall | None = None

    @property
    def cancelled(self) -> bool:
        return self._cancelled.is_set()

    @property
    def released(self) -> bool:
        return self._released.is_set()

    def attach(self, call: UpstreamCall) -> None:
        self._call = call
        if self.cancelled or self.released:
            call.close()

    def cancel(self) -> None:
        """Stop and end the stream `cancelled`: closing the upstream response ends its read."""
        self._cancelled.set()
        self._close()

    def release(self) -> None:
        """Stop without ending the stream, so another worker can run it."""
        self._released.set()
        self._close()

    def _close(self) -> None:
        if self._call is not None:
            self._call.close()


class Generations:
    """The generations running in this process, by stream id."""

    def __init__(self) -> None:
        self._running: dict[str, Generation] = {}
        self._lock = threading.Lock()

    def add(self, generation: Generation) -> None:
        with self._lock:
            self._running[generation.stream_id] = generation

    def remove(self, generation: Generation) -> None:
        with self._lock:
            self._running.pop(generation.stream_id, None)

    def cancel(self, stream_id: str) -> bool:
        """Cancel the stream if it runs here; False if it does not."""
        with self._lock:
            generation = self._running.get(stream_id)
        if generation is None:
            return False
        generation.cancel()
        return True

    def release_all(self) -> list[str]:
        """Release every running generation (shutdown); returns their stream ids."""
        with self._lock:
            running = list(self._running.values())
        for generation in running:
            generation.release()
        return [generation.stream_id for generation in running]


@dataclass(frozen=True)
class GenerationContext:
    """What every generation in a worker process shares."""

    settings: Settings
    store: StreamStore
    upstream: Upstream
    generations: Generations
    flusher: Flusher
    leases: LeaseKeeper | None = None


def run_generation(ctx: GenerationContext, stream_id: str,
                   on_leased: Callable[[], None] | None = None) -> RunOutcome:
    """Generate the answer of a queued stream; returns its terminal status,
    or RELEASED if it stopped for another worker to carry on.

    Returns without writing when the stream is gone or no longer queued
    (cancelled while queued). Raises StartFailed when the lease could not
    be taken (the stream is untouched: the caller retries or reconciles),
    and GenerationFailed after writing `error`. `on_leased` is called once
    the lease is this worker's. The lease claims the stream with its first
    event (spool/streams/leases.py): `start`, or `reset` on a rerun after a
    lost worker; the answer follows it.
    """
    writer = uuid.uuid4().hex
    try:
        lease = ctx.store.leases.acquire(stream_id, ctx.settings.lease_seconds, writer)
    except StreamNotFoundError:
        log.warning("stream %s: expired before a worker took it", stream_id)
        return RunOutcome.MISSING
    except Exception as exc:
        raise StartFailed(f"stream {stream_id}: could not take its lease: {exc!r}") from exc
    meta = lease.meta
    if not lease.claimed:
        return RunOutcome.of(meta.status)  # cancelled while queued, or another worker has it
    if on_leased is not None:
        on_leased()
    # The lease wrote the claiming event at last_seq + 1: the answer follows it.
    first_seq, attempt, created_at = meta.last_seq + 2, meta.attempt, meta.created_at
    try:
        request = json.loads(meta.request or "")
        if created_at is None:
            raise ValueError("no created_at")
    except ValueError as exc:
        # It can never run: end it now rather than let the lease rerun it.
        log.error("stream %s: unreadable request (%r); ending it", stream_id, exc)
        ctx.store.append(stream_id, writer, first_seq, [(EventType.ERROR, UNREADABLE)])
        ctx.store.leases.drop(stream_id)
        raise GenerationFailed(f"unreadable request: {exc!r}") from exc
    bind(stream_id=stream_id, request_id=request.get("request_id"))
    publisher = Publisher(
        ctx.store,
        stream_id,
        writer,
        first_seq=first_seq,
        interval=ctx.settings.coalesce_ms / 1000,
        outage_window=ctx.settings.redis_outage_window,
    )
    watch = GenerationWatch(created_at)
    outcome = RunOutcome.ERROR
    generation = Generation(stream_id)
    ctx.generations.add(generation)
    ctx.flusher.add(publisher)
    if ctx.leases is not None:
        ctx.leases.track(stream_id, publisher.writer, generation.release)
    try:
        outcome = _generate(ctx, request, generation, publisher, attempt, watch)
    finally:
        watch.end(outcome.value)
        if ctx.leases is not None:
            ctx.leases.untrack(stream_id)
        ctx.flusher.remove(publisher)
        ctx.generations.remove(generation)
    if outcome is not RunOutcome.RELEASED:
        ctx.store.leases.drop(stream_id)
    return outcome


def _generate(
    ctx: GenerationContext,
    request: dict[str, Any],
    generation: Generation,
    publisher: Publisher,
    attempt: int,
    watch: GenerationWatch,
) -> RunOutcome:
    reruns_left = ctx.settings.upstream_reset_retries
    deadline = time.monotonic() + ctx.settings.max_generation_seconds
    try:
        while True:
            try:
                return _answer(ctx.upstream.open(request), generation, publisher, deadline, watch)
            except UpstreamError as exc:
                if generation.released:
                    return RunOutcome.RELEASED
                if generation.cancelled:
                    publisher.finish(EventType.CANCELLED, {})
                    return RunOutcome.CANCELLED
                UPSTREAM_ERRORS.labels(exc.code).inc()
                if exc.code not in RERUNNABLE or reruns_left <= 0:
                    log.warning("stream %s: %s (%s)", generation.stream_id, exc.message, exc.code)
                    publisher.finish(EventType.ERROR, exc.event_data())
                    raise GenerationFailed(f"{exc.code}: {exc.message}") from exc
                reruns_left -= 1
                log.warning("stream %s: %s (%s); running it again", generation.stream_id, exc.message, exc.code)
                if publisher.wrote_text:
                    attempt += 1
                    publisher.reset(attempt, exc.code)
    except StreamClosedError:
        log.warning("stream %s: taken over or ended elsewhere; stopping here", generation.stream_id)
        return RunOutcome.RELEASED
    except RedisOutageError:
        log.error("stream %s: Redis away too long; leaving it to the lease reaper", generation.stream_id)
        generation.release()
        return RunOutcome.RELEASED
    except GenerationFailed:
        raise
    except Exception:
        if generation.released:
            return RunOutcome.RELEASED
        log.exception("stream %s: generation failed", generation.stream_id)
        publisher.finish(EventType.ERROR, {"code": "internal_error", "message": "the worker failed"})
        raise


def _answer(
    call: UpstreamCall,
    generation: Generation,
    publisher: Publisher,
    deadline: float,
    watch: GenerationWatch,
) -> RunOutcome:
    """One upstream call, streamed into the publisher; raises UpstreamError."""
    finish_reason: str | None = None
    usage: dict[str, Any] | None = None
    info: dict[str, Any] = {}  # the upstream's model, system_fingerprint, service_tier
    try:
        generation.attach(call)
        for piece in call:
            if generation.cancelled or generation.released or publisher.cancel_requested:
                break
            if piece.text:
                publisher.delta(piece.text)
                watch.token()
            elif piece.events:
                for type_, data in piece.events:
                    publisher.add(type_, data)
                watch.token()
            finish_reason = piece.finish_reason or finish_reason
            usage = piece.usage or usage
            if piece.info:
                info.update(piece.info)
            if time.monotonic() > deadline:
                raise UpstreamError("upstream_timeout", "the answer took longer than the generation limit")
    finally:
        call.close()
    if generation.released:
        return RunOutcome.RELEASED
    if generation.cancelled or publisher.cancel_requested:
        publisher.finish(EventType.CANCELLED, {})
        return RunOutcome.CANCELLED
    if finish_reason is None:
        raise UpstreamError("upstream_truncated", "the model's answer ended without a finish reason")
    publisher.finish(EventType.DONE, {"finish_reason": finish_reason, "usage": usage, **info})
    return RunOutcome.DONE
