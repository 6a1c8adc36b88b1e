"""Stream responses: the one follow loop (spool/tail.py) in any wire format.

Every route that streams a stream's events (the native events route, the
POST that streams, the OpenAI completion, the AI SDK route) answers with
`stream_response(stream_id, after, encoder)`: a format is an Encoder
(spool/wire.py), nothing more.
"""

from __future__ import annotations

from collections.abc import Callable

from flask import Response

from gateway import metrics
from gateway.services import Services, services
from spool.events import StreamStatus
from spool.tail import follow
from spool.wire import Encoder


def stream_response(stream_id: str, after: int, encoder: Encoder, *, ended: bool = False,
                    position: int | None = None) -> Response:
    """A live response of the stream's events with seq > after, encoded by
    `encoder`. `ended`: the stream is terminal and `after` at its end, so the
    response holds only the preamble (nothing can follow). `position`: the
    stream's place in the queue, when the caller just queued it."""
    s = services()
    body = follow(s.store, s.hub, stream_id, after, encoder, s.settings.heartbeat_interval,
                  queue_position(s, stream_id), ended=ended, position=position)
    return Response(
        metrics.tracked(body, encoder.name, after),
        mimetype=encoder.mimetype,
        headers={"X-Stream-Id": stream_id, "Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
    )


def queue_position(s: Services, stream_id: str) -> Callable[[], int | None]:
    """A probe of the stream's place in the queue (1 = next), None once it left it."""

    def position() -> int | None:
        if s.store.status(stream_id) is not StreamStatus.QUEUED:
            return None
        index = s.queue.get_job_position(stream_id)
        return None if index is None else index + 1

    return position
