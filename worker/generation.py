"""Running one generation: upstream chunks in, stream events out."""

from __future__ import annotations

import json
import logging
import threading
import time
import uuid
from dataclasses import dataclass
from typing import Any

from spool.errors import StreamClosedError, StreamNotFoundError, UpstreamError
from spool.events import EventType, StreamStatus
from spool.logs import bind
from spool.settings import Settings
from spool.store import StreamStore
from worker.metrics import UPSTREAM_ERRORS, GenerationWatch
from worker.publisher import Flusher, Publisher
from worker.upstream import Upstream, UpstreamCall

log = logging.getLogger(__name__)

# How long a write keeps retrying through a Redis outage before giving up.
REDIS_RETRY_WINDOW = 30.0


class GenerationFailed(Exception):
    """Raised after an `error` event was written, so RQ records the job as failed."""


class Generation:
    """A running answer that another thread may cancel."""

    def __init__(self, stream_id: str) -> None:
        self.stream_id = stream_id
        self._cancelled = threading.Event()
        self._call: UpstreamCall | None = None

    @property
    def cancelled(self) -> bool:
        return self._cancelled.is_set()

    def attach(self, call: UpstreamCall) -> None:
        self._call = call
        if self.cancelled:
            call.close()

    def cancel(self) -> None:
        """Stop the generation: closing the upstream response ends its read."""
        self._cancelled.set()
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

    def __len__(self) -> int:
        with self._lock:
            return len(self._running)


@dataclass(frozen=True)
class GenerationContext:
    """What every generation in a worker process shares."""

    settings: Settings
    store: StreamStore
    upstream: Upstream
    generations: Generations
    flusher: Flusher


def run_generation(ctx: GenerationContext, stream_id: str) -> str:
    """Generate the answer of a queued stream; returns its terminal status.

    Returns without writing when the stream is gone or no longer queued
    (cancelled while queued). Raises GenerationFailed after writing `error`.
    """
    try:
        meta = ctx.store.meta(stream_id)
    except StreamNotFoundError:
        log.warning("stream %s: expired before a worker took it", stream_id)
        return "missing"
    if meta["status"] != StreamStatus.QUEUED.value:
        return meta["status"]
    request = json.loads(meta["request"])
    bind(stream_id=stream_id, request_id=request.get("request_id"))
    watch = GenerationWatch(float(meta["created_at"]))
    outcome = "error"
    publisher = Publisher(
        ctx.store, stream_id, uuid.uuid4().hex, ctx.settings.coalesce_ms / 1000, REDIS_RETRY_WINDOW
    )
    try:
        publisher.start({"id": stream_id, "model": request["model"], "created": int(time.time())})
    except StreamClosedError:
        return ctx.store.meta(stream_id)["status"]
    except BaseException:
        watch.end(outcome)
        raise
    generation = Generation(stream_id)
    ctx.generations.add(generation)
    ctx.flusher.add(publisher)
    try:
        outcome = _generate(ctx, request, generation, publisher, watch)
        return outcome
    finally:
        watch.end(outcome)
        ctx.flusher.remove(publisher)
        ctx.generations.remove(generation)


def _generate(
    ctx: GenerationContext, request: dict[str, Any], generation: Generation, publisher: Publisher, watch: GenerationWatch
) -> str:
    finish_reason: str | None = None
    usage: dict[str, Any] | None = None
    deadline = time.monotonic() + ctx.settings.max_generation_seconds
    call: UpstreamCall | None = None
    try:
        call = ctx.upstream.open(request)
        generation.attach(call)
        for piece in call:
            if generation.cancelled or publisher.cancel_requested:
                break
            if piece.text:
                publisher.delta(piece.text)
                watch.token()
            finish_reason = piece.finish_reason or finish_reason
            usage = piece.usage or usage
            if time.monotonic() > deadline:
                raise UpstreamError("upstream_timeout", "the answer took longer than the generation limit")
        if generation.cancelled or publisher.cancel_requested:
            publisher.finish(EventType.CANCELLED, {})
            return StreamStatus.CANCELLED.value
        if finish_reason is None:
            raise UpstreamError("upstream_truncated", "the model's answer ended without a finish reason")
        publisher.finish(EventType.DONE, {"finish_reason": finish_reason, "usage": usage})
        return StreamStatus.DONE.value
    except UpstreamError as exc:
        if generation.cancelled:
            publisher.finish(EventType.CANCELLED, {})
            return StreamStatus.CANCELLED.value
        UPSTREAM_ERRORS.labels(exc.code).inc()
        log.warning("stream %s: %s (%s)", generation.stream_id, exc.message, exc.code)
        publisher.finish(EventType.ERROR, {"code": exc.code, "message": exc.message})
        raise GenerationFailed(f"{exc.code}: {exc.message}") from exc
    except StreamClosedError:
        log.warning("stream %s: closed by someone else; stopping", generation.stream_id)
        return "closed"
    except Exception:
        log.exception("stream %s: generation failed", generation.stream_id)
        publisher.finish(EventType.ERROR, {"code": "internal_error", "message": "the worker failed"})
        raise
    finally:
        if call is not None:
            call.close()
