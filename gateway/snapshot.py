"""The snapshot route's JSON (GET /v1/streams/<id>): a stream's metadata and
its assistant message, folded from its events by the one fold
(spool/message.py) that also serves `stream: false` and the clients."""

from __future__ import annotations

from typing import Any

from spool.message import fold
from spool.streams import StreamStore


def snapshot(store: StreamStore, stream_id: str) -> dict[str, Any]:
    """The stream's state as the snapshot route returns it (without its
    queue position, which the route adds); raises StreamNotFoundError."""
    meta = store.meta(stream_id)
    folded = fold(store.read(stream_id, 0))
    return {
        "id": stream_id,
        "status": meta.status.value,
        "model": meta.model,
        "text": folded.text,
        "message": folded.message(),
        "last_seq": meta.last_seq,
        "finish_reason": meta.finish_reason,
        "usage": meta.usage,
        "logprobs": folded.logprobs,
        "upstream_model": folded.info.get("model"),
        "system_fingerprint": folded.info.get("system_fingerprint"),
        "service_tier": folded.info.get("service_tier"),
        "error": meta.error,
        "created_at": meta.created_at,
        "started_at": meta.started_at,
        "ended_at": meta.ended_at,
        "cancel_requested": meta.cancel_requested,
        "attempt": meta.attempt,
    }
