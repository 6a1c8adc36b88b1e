"""Encoding stored events as OpenAI chat.completion chunks (no I/O).

The `openai` wire format is what OpenAI's own streaming endpoint sends, so the
official SDKs read it unchanged, plus an `id: <seq>` line on every frame so a
dropped stream can be resumed with `after` or `Last-Event-ID`:

    start      -> a chunk with delta {"role": "assistant"}
    delta      -> a chunk with delta {"content": text}
    reasoning  -> a chunk with delta {"reasoning_content": text}
    refusal    -> a chunk with delta {"refusal": text}
    tool_call  -> a chunk with delta {"tool_calls": [{index, id, type,
                  function: {name, arguments: ""}}]} (`custom`: {name, input})
    tool_call_delta -> delta {"tool_calls": [{index, function: {arguments}}]}
    logprobs   -> a chunk with an empty delta and the choice's `logprobs`
    done       -> a chunk with finish_reason, then (include_usage) a chunk with
                  empty choices and usage, then `data: [DONE]`; both carry the
                  upstream's model, system_fingerprint and service_tier when known
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

from spool.events import Event, compact_json
from spool.message import MessageFold
from spool.wire import OPENAI_HEARTBEAT, OPENAI_PREAMBLE, Encoder, WireFormat

DONE_LINE = b"data: [DONE]\n\n"
# Sent when the tail lost Redis before the end: the SDK raises it, and the
# client may resume with the last `id:` it saw.
INTERRUPTED = b'data: {"error":{"message":"the stream was interrupted; resume with after=<last id>",' \
              b'"type":"server_error","param":null,"code":"stream_interrupted"}}\n\n'

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


def error_status(error: dict[str, Any]) -> int:
    """The HTTP status answering an `error` event's fields: the upstream's own
    when it refused the request (a 4xx, so the SDKs raise BadRequestError and
    friends as they would against it), else spool's status for the code (an
    upstream 5xx is a 502 here: the fault is behind the gateway)."""
    status = error.get("status")
    if error.get("code") == "upstream_rejected" and isinstance(status, int) and 400 <= status < 500:
        return status
    return ERROR_STATUS.get(error.get("code", ""), (500, ""))[0]


def error_body(code: str, message: str, type_: str | None = None, param: str | None = None) -> dict[str, Any]:
    """OpenAI's error object: {"error": {"message", "type", "param", "code"}}."""
    if type_ is None:
        type_ = ERROR_STATUS.get(code, (500, "api_error"))[1]
    return {"error": {"message": message, "type": type_, "param": param, "code": code}}


def chunk(ctx: ChunkContext, delta: dict[str, Any] | None, finish_reason: str | None = None,
          logprobs: dict[str, Any] | None = None) -> dict[str, Any]:
    """One chat.completion.chunk; `delta=None` gives the usage chunk's empty choices."""
    choices = [] if delta is None else [{"index": 0, "delta": delta, "finish_reason": finish_reason}]
    if logprobs is not None:
        choices[0]["logprobs"] = logprobs
    return {
        "id": ctx.completion_id,
        "object": "chat.completion.chunk",
        "created": ctx.created,
        "model": ctx.model,
        "choices": choices,
    }


class OpenAIEncoder(Encoder):
    """chat.completion.chunk frames (see the module docstring). It remembers
    each tool call's type (a `custom` call's fragments are `input`, not
    `arguments`) and whether anything was sent since the last reset, so it
    reads the events before a resume point (`wants_history`)."""

    name = WireFormat.OPENAI.value
    preamble = OPENAI_PREAMBLE
    heartbeat = OPENAI_HEARTBEAT
    wants_history = True

    def __init__(self, ctx: ChunkContext) -> None:
        super().__init__()
        self.ctx = ctx
        self._call_types: dict[int, str] = {}
        self._sent = False  # answer chunks sent since the last reset (or the start)

    def observe(self, event: Event) -> None:
        if event.type == b"reset":
            self._sent = False
        elif event.type in _ANSWER_TYPES:
            self._sent = True
            if event.type == b"tool_call":
                fields = json.loads(event.data)
                self._call_types[fields["index"]] = fields.get("tool_type") or "function"

    def encode(self, event: Event) -> bytes:
        ctx, seq, type_ = self.ctx, event.seq, event.type
        fields = json.loads(event.data)
        if type_ == b"delta":
            self._sent = True
            return _frame(seq, chunk(ctx, {"content": fields["text"]}))
        if type_ == b"start":
            # No `content` yet: OpenAI's own first chunk holds "" before text
            # but null before tool calls, and which comes is not known yet.
            return _frame(seq, chunk(ctx, {"role": "assistant"}))
        if type_ in _ANSWER_TYPES:
            self._sent = True
            return _frame(seq, self._answer_chunk(type_, fields))
        if type_ == b"done":
            self.finished = True
            info = {key: fields[key] for key in ("model", "system_fingerprint", "service_tier") if fields.get(key)}
            out = _frame(seq, {**chunk(ctx, {}, fields["finish_reason"]), **info})
            if ctx.include_usage:
                out += _frame(seq, {**chunk(ctx, None), **info, "usage": fields.get("usage")})
            return out + b"id: %d\n" % seq + DONE_LINE
        if type_ == b"error":
            self.finished = True
            return _frame(seq, error_body(fields["code"], fields["message"], param=fields.get("param")))
        if type_ == b"cancelled":
            self.finished = True
            return _frame(seq, error_body("cancelled", "the generation was cancelled"))
        if type_ == b"reset":
            if not self._sent:
                return b""  # nothing to take back yet: the rerun's answer simply follows
            # OpenAI's chunks cannot take back text: report the restart as an error.
            self.finished = True
            reason = fields["reason"]
            message = (f"the answer was interrupted ({reason}) and is being generated again; "
                       f"read it whole at /v1/streams/{stream_id_of(ctx.completion_id)}/events")
            return _frame(seq, error_body(reason, message))
        raise ValueError(f"unknown event type {type_!r}")

    def interrupted(self) -> bytes:
        return INTERRUPTED

    def _answer_chunk(self, type_: bytes, fields: dict[str, Any]) -> dict[str, Any]:
        """The chunk for reasoning, refusal, tool calls and logprobs."""
        if type_ == b"reasoning":
            # The field vLLM and DeepSeek stream; the SDKs keep it on the message.
            return chunk(self.ctx, {"reasoning_content": fields["text"]})
        if type_ == b"refusal":
            return chunk(self.ctx, {"refusal": fields["text"]})
        if type_ == b"tool_call":
            call_type = fields.get("tool_type") or "function"
            self._call_types[fields["index"]] = call_type
            body = {"name": fields.get("name")}
            body["input" if call_type == "custom" else "arguments"] = ""
            call = {"index": fields["index"], "id": fields.get("id"), "type": call_type, call_type: body}
            return chunk(self.ctx, {"tool_calls": [call]})
        if type_ == b"tool_call_delta":
            call_type = self._call_types.get(fields["index"], "function")
            key = "input" if call_type == "custom" else "arguments"
            return chunk(self.ctx, {"tool_calls": [{"index": fields["index"], call_type: {key: fields["arguments"]}}]})
        # logprobs
        return chunk(self.ctx, {}, logprobs={"content": fields.get("content"), "refusal": fields.get("refusal")})


_ANSWER_TYPES = frozenset({b"reasoning", b"refusal", b"tool_call", b"tool_call_delta", b"logprobs"})


def completion(ctx: ChunkContext, folded: MessageFold) -> dict[str, Any]:
    """The non-streaming chat.completion object of a finished answer."""
    info = folded.info
    body = {
        "id": ctx.completion_id,
        "object": "chat.completion",
        "created": ctx.created,
        "model": info.get("model") or ctx.model,
        "choices": [{
            "index": 0,
            "message": folded.message(reasoning_key="reasoning_content"),
            "finish_reason": folded.finish_reason,
            "logprobs": folded.logprobs,
        }],
        "usage": folded.usage,
    }
    for key in ("system_fingerprint", "service_tier"):
        if info.get(key):
            body[key] = info[key]
    return body


def _frame(seq: int, obj: dict[str, Any]) -> bytes:
    payload = compact_json(obj).encode()
    return b"id: %d\ndata: %s\n\n" % (seq, payload)
