"""Encoding stored events as OpenAI chat.completion chunks (no I/O).

The `openai` wire format is what OpenAI's own streaming endpoint sends, so the
official SDKs read it unchanged, plus an `id: <seq>` line on every frame so a
dropped stream can be resumed with `after` or `Last-Event-ID`:

    start      -> a chunk with delta {"role": "assistant", "content": ""}
    delta      -> a chunk with delta {"content": text}
    done       -> a chunk with finish_reason, then (include_usage) a chunk with
                  empty choices and usage, then `data: [DONE]`
    error      -> `data: {"error": {...}}`, which the SDKs raise as APIError
    cancelled  -> the same, with code `cancelled`
    reset      -> the same, with the reset's reason as code, once text was
                  sent (a chunk stream cannot take text back): the response
                  ends there and the native events route has the whole answer

Heartbeats are a bare comment line with no blank line after it: the Python
SDK dispatches an empty event (and fails to parse it) on every blank line once
it has seen an `id:`, so a comment must not end an event.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

OPENAI_HEARTBEAT = b": heartbeat\n"
OPENAI_PREAMBLE = b": stream\n"
DONE_LINE = b"data: [DONE]\n\n"

# Status and OpenAI error `type` for each error-event code (docs/protocol.md).
ERROR_STATUS = {
    "upstream_rate_limited": (429, "rate_limit_error"),
    "upstream_timeout": (504, "timeout_error"),
    "upstream_unreachable": (502, "api_error"),
    "upstream_auth": (502, "api_error"),
    "upstream_rejected": (400, "invalid_request_error"),
    "upstream_truncated": (502, "api_error"),
    "upstream_error": (502, "api_error"),
    "cancelled": (409, "cancelled"),
    "worker_lost": (503, "server_error"),
    "worker_shutdown": (503, "server_error"),
    "internal_error": (500, "server_error"),
}


@dataclass(frozen=True)
class ChunkContext:
    """What every chunk of one completion repeats."""

    completion_id: str
    model: str
    created: int
    include_usage: bool = False


def completion_id(stream_id: str) -> str:
    """The OpenAI-style id of the completion answering stream `stream_id`."""
    return f"chatcmpl-{stream_id}"


def stream_id_of(completion: str) -> str:
    """The stream id inside a `chatcmpl-<stream id>` completion id."""
    return completion.removeprefix("chatcmpl-")


def error_body(code: str, message: str, type_: str | None = None, param: str | None = None) -> dict[str, Any]:
    """OpenAI's error object: {"error": {"message", "type", "param", "code"}}."""
    if type_ is None:
        type_ = ERROR_STATUS.get(code, (500, "api_error"))[1]
    return {"error": {"message": message, "type": type_, "param": param, "code": code}}


def chunk(ctx: ChunkContext, delta: dict[str, Any] | None, finish_reason: str | None = None) -> dict[str, Any]:
    """One chat.completion.chunk; `delta=None` gives the usage chunk's empty choices."""
    choices = [] if delta is None else [{"index": 0, "delta": delta, "finish_reason": finish_reason}]
    return {
        "id": ctx.completion_id,
        "object": "chat.completion.chunk",
        "created": ctx.created,
        "model": ctx.model,
        "choices": choices,
    }


def encode_openai(ctx: ChunkContext, seq: int, type_: bytes, data: bytes) -> bytes:
    """The SSE frames for one stored event (see the module docstring)."""
    fields = json.loads(data)
    if type_ == b"start":
        return _frame(seq, chunk(ctx, {"role": "assistant", "content": ""}))
    if type_ == b"delta":
        return _frame(seq, chunk(ctx, {"content": fields["text"]}))
    if type_ == b"done":
        out = _frame(seq, chunk(ctx, {}, fields["finish_reason"]))
        if ctx.include_usage:
            out += _frame(seq, {**chunk(ctx, None), "usage": fields.get("usage")})
        return out + b"id: %d\n" % seq + DONE_LINE
    if type_ == b"error":
        return _frame(seq, error_body(fields["code"], fields["message"]))
    if type_ == b"cancelled":
        return _frame(seq, error_body("cancelled", "the generation was cancelled"))
    if type_ == b"reset":
        # OpenAI's chunks cannot take back text: report the restart as an error.
        reason = fields["reason"]
        message = (f"the answer was interrupted ({reason}) and is being generated again; "
                   f"read it whole at /v1/streams/{stream_id_of(ctx.completion_id)}/events")
        return _frame(seq, error_body(reason, message))
    raise ValueError(f"unknown event type {type_!r}")


def completion(ctx: ChunkContext, text: str, finish_reason: str, usage: dict[str, Any] | None) -> dict[str, Any]:
    """The non-streaming chat.completion object."""
    return {
        "id": ctx.completion_id,
        "object": "chat.completion",
        "created": ctx.created,
        "model": ctx.model,
        "choices": [{
            "index": 0,
            "message": {"role": "assistant", "content": text},
            "finish_reason": finish_reason,
            "logprobs": None,
        }],
        "usage": usage,
    }


def _frame(seq: int, obj: dict[str, Any]) -> bytes:
    payload = json.dumps(obj, separators=(",", ":"), ensure_ascii=False).encode()
    return b"id: %d\ndata: %s\n\n" % (seq, payload)
