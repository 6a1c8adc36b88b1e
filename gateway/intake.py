"""Queueing a new stream: the one path both APIs create streams by.

Everything it uses comes in as an argument (the services, the caller, the
request id): it reads no Flask globals.
"""

from __future__ import annotations

from typing import Any

from gateway import metrics
from gateway.auth import Caller
from gateway.limits import admit_stream
from gateway.services import Services
from spool.logs import bind
from spool.queueing import enqueue_generation


def queue_stream(s: Services, caller: Caller, stream_id: str, chat: dict[str, Any], api: str, *,
                 request_id: str | None = None) -> int | None:
    """Record the stream for `caller`, admit it past the limits and enqueue
    its generation; on any failure nothing is left behind. `api` labels the
    metric (spool, openai, ui); `request_id` is kept in the stored request.

    Returns the stream's place in the queue as it was queued (1 = next) when
    the enqueue's own round trip told it, else None."""
    position = None
    bind(stream_id=stream_id)
    request = {**chat, "request_id": request_id}
    try:
        if s.settings.max_concurrent_streams or s.queue.connection is not s.redis:
            # Created before admission: a concurrent admission prunes live-set
            # members without metadata as ended, and would then admit too many.
            # (A queue on another Redis cannot share the streams' transaction.)
            s.store.create(stream_id, request, owner=caller.owner)
            admit_stream(s, caller.subject, stream_id)
            enqueue_generation(s.queue, stream_id, s.settings.stream_ttl)
        else:
            admit_stream(s, caller.subject, stream_id)  # the queue's depth only: it needs no metadata
            # One round trip, in one transaction: the worker starts that much sooner.
            with s.redis.pipeline() as pipe:
                pipe.multi()  # RQ would call it after the first command, which redis-py refuses
                s.store.create(stream_id, request, owner=caller.owner, pipeline=pipe)
                enqueue_generation(s.queue, stream_id, s.settings.stream_ttl, pipeline=pipe)
                # Queued last, so the queue's length is its place: the
                # response's first line without two more round trips.
                pipe.llen(s.queue.key)
                position = pipe.execute()[-1]
    except Exception:
        s.store.delete(stream_id)
        raise
    metrics.STREAMS_CREATED.labels(api).inc()
    return position
