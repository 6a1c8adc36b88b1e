"""Parsing a chat-completions event stream into Pieces (no I/O).

The SDK's own iterator builds a pydantic model per chunk; at thousands of
chunks per second that is most of a worker's CPU (see docs/benchmarks.md).
The worker still makes the request through the SDK (auth, retries, status
errors) but reads the raw bytes and parses each chunk with `json` here.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from spool.decoders import SSEDecoder
from spool.errors import UpstreamError


@dataclass(frozen=True)
class Piece:
    """What one upstream chunk contributes: text, an end reason, or usage."""

    text: str = ""
    finish_reason: str | None = None
    usage: dict[str, Any] | None = None



def _mid_answer_error() -> UpstreamError:
    return UpstreamError("upstream_error", "the model reported an error mid-answer")


def _unreadable() -> UpstreamError:
    return UpstreamError("upstream_error", "the model sent an unreadable answer")



class ChunkParser:
    """Turns event-stream bytes, split anywhere, into Pieces.

    `feed(chunk) -> pieces`; `done` becomes true at `data: [DONE]`, after
    which further input is ignored. An event the stream does not end with a
    blank line is dropped, as the SDK and browsers drop it. Raises UpstreamError for an error chunk
    or one that is not a chat-completion chunk.
    """

    def __init__(self) -> None:
        self._sse = SSEDecoder()
        self.done = False

    def feed(self, chunk: bytes) -> list[Piece]:
        pieces: list[Piece] = []
        for message in self._sse.feed(chunk):
            if self.done:
                break
            if message.data.startswith("[DONE]"):
                self.done = True
                break
            piece = parse_chunk(message.data)
            if piece is not None:
                pieces.append(piece)
        return pieces


def parse_chunk(data: str) -> Piece | None:
    """One chunk's Piece, or None when it contributes nothing."""
    try:
        obj = json.loads(data)
    except ValueError:
        raise _unreadable() from None
    if not isinstance(obj, dict):
        raise _unreadable()
    if obj.get("error"):
        raise _mid_answer_error()
    usage = obj.get("usage")
    usage = _without_nulls(usage) if isinstance(usage, dict) else None
    choices = obj.get("choices")
    # The include_usage chunk has empty `choices`.
    if not choices:
        return Piece(usage=usage) if usage else None
    choice = choices[0]
    if not isinstance(choice, dict):
        raise _unreadable()
    delta = choice.get("delta") or {}
    text = delta.get("content") if isinstance(delta, dict) else None
    if text is not None and not isinstance(text, str):
        raise _unreadable()
    return Piece(text or "", choice.get("finish_reason"), usage)


def _without_nulls(value: dict[str, Any]) -> dict[str, Any]:
    """Like the SDK's model_dump(exclude_none=True): nulls dropped at every depth."""
    return {k: _without_nulls(v) if isinstance(v, dict) else v for k, v in value.items() if v is not None}
