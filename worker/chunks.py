"""Parsing a chat-completions event stream into Pieces (no I/O).

The SDK's own iterator builds a pydantic model per chunk; at thousands of
chunks per second that is most of a worker's CPU (see docs/benchmarks.md).
The worker still makes the request through the SDK (auth, retries, status
errors) but reads the raw bytes and parses each chunk with `json` here.

A chunk whose delta holds only text (the common case) costs what it always
did: one Piece with `text`. Anything else in a delta (reasoning, refusal,
tool calls) or a choice (logprobs) becomes `events`: the stream events the
chunk implies, in the order they are written (docs/protocol.md).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from spool.decoders import SSEDecoder
from spool.errors import UpstreamError
from spool.events import DONE_INFO_KEYS, EventType

# Delta keys that hold nothing beyond the text: a delta with no other
# non-null key is plain text.
_PLAIN_KEYS = frozenset({"content", "role"})
# Where compatible servers put reasoning text: vLLM and DeepSeek send
# `reasoning_content`, Ollama and OpenRouter `reasoning`.
_REASONING_KEYS = ("reasoning_content", "reasoning")

Events = tuple[tuple[EventType, dict[str, Any]], ...]


# Slots, not frozen: one is made per chunk, and a frozen dataclass's
# __init__ (object.__setattr__ per field) cost three times as much.
@dataclass(slots=True)
class Piece:
    """What one upstream chunk contributes: text, an end reason, usage, the
    upstream's own report (`info`: model, system_fingerprint, service_tier)
    and, for anything but plain text, `events` (which then hold the text too)."""

    text: str = ""
    finish_reason: str | None = None
    usage: dict[str, Any] | None = None
    events: Events = ()
    info: dict[str, Any] | None = None


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
        self._calls: dict[int, str] = {}  # tool call index -> type, for the calls begun
        self.done = False

    def feed(self, chunk: bytes) -> list[Piece]:
        pieces: list[Piece] = []
        for message in self._sse.feed(chunk):
            if self.done:
                break
            if message.data.startswith("[DONE]"):
                self.done = True
                break
            piece = parse_chunk(message.data, self._calls)
            if piece is not None:
                pieces.append(piece)
        return pieces


def parse_chunk(data: str, calls: dict[int, str] | None = None) -> Piece | None:
    """One chunk's Piece, or None when it contributes nothing. `calls` holds
    the tool calls begun so far (index -> type) across a stream's chunks."""
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
        return Piece(usage=usage, info=_info(obj)) if usage else None
    choice = choices[0]
    if not isinstance(choice, dict):
        raise _unreadable()
    delta = choice.get("delta") or {}
    if not isinstance(delta, dict):
        raise _unreadable()
    text = delta.get("content")
    if text is not None and not isinstance(text, str):
        raise _unreadable()
    finish_reason = choice.get("finish_reason")
    # Only the final chunks' report is kept; reading it from every chunk would tax plain text.
    info = _info(obj) if finish_reason or usage else None
    # Plain text: a delta of content alone (most chunks), or with only nulls beside it.
    if choice.get("logprobs") is None and (
        (text is not None and len(delta) == 1) or all(key in _PLAIN_KEYS or delta[key] is None for key in delta)
    ):
        return Piece(text or "", finish_reason, usage, info=info)
    if calls is not None and len(delta) == 1 and choice.get("logprobs") is None:
        fragment = _next_fragment(delta.get("tool_calls"), calls)
        if fragment is not None:
            return Piece("", finish_reason, usage, fragment, info)
    events = _events(delta, text, choice.get("logprobs"), {} if calls is None else calls)
    return Piece("", finish_reason, usage, events, info)


def _next_fragment(tool_calls: Any, calls: dict[int, str]) -> Events | None:
    """The event of a function call's next arguments fragment, the shape of
    most of a tool call's chunks ({"index", "function": {"arguments"}} of a
    call already begun), checked in a few steps so that a tool call costs
    about what text costs; None for anything else (_events reads it)."""
    if type(tool_calls) is not list or len(tool_calls) != 1:
        return None
    call = tool_calls[0]
    if type(call) is not dict or len(call) != 2:
        return None
    index, body = call.get("index"), call.get("function")
    if type(index) is not int or calls.get(index) != "function" or type(body) is not dict or len(body) != 1:
        return None
    fragment = body.get("arguments")
    if type(fragment) is not str or not fragment:
        return None
    return ((EventType.TOOL_CALL_DELTA, {"index": index, "arguments": fragment}),)


def _events(delta: dict[str, Any], text: str | None, logprobs: Any, calls: dict[int, str]) -> Events:
    """The events of a delta that is more than text, in the order they are written."""
    events: list[tuple[EventType, dict[str, Any]]] = []
    for key in _REASONING_KEYS:
        reasoning = delta.get(key)
        if reasoning:
            events.append((EventType.REASONING, {"text": _string(reasoning)}))
            break
    if text:
        events.append((EventType.DELTA, {"text": text}))
    refusal = delta.get("refusal")
    if refusal:
        events.append((EventType.REFUSAL, {"text": _string(refusal)}))
    tool_calls = delta.get("tool_calls")
    if tool_calls:
        if not isinstance(tool_calls, list):
            raise _unreadable()
        for position, call in enumerate(tool_calls):
            events += _tool_call_events(call, position, calls)
    if isinstance(logprobs, dict):
        kept = {k: logprobs[k] for k in ("content", "refusal") if logprobs.get(k) is not None}
        if kept:
            events.append((EventType.LOGPROBS, kept))
    return tuple(events)


def _tool_call_events(call: Any, position: int, calls: dict[int, str]) -> list[tuple[EventType, dict[str, Any]]]:
    """`tool_call` for a call's first fragment, then `tool_call_delta` for its arguments."""
    if not isinstance(call, dict):
        raise _unreadable()
    index = call.get("index", position)
    if isinstance(index, bool) or not isinstance(index, int):
        raise _unreadable()
    type_ = call.get("type") or calls.get(index) or ("custom" if "custom" in call else "function")
    body = call.get(type_) or {}
    if not isinstance(body, dict):
        raise _unreadable()
    events: list[tuple[EventType, dict[str, Any]]] = []
    if index not in calls:
        calls[index] = type_
        name = body.get("name")
        events.append((EventType.TOOL_CALL, {
            "index": index, "id": _string(call.get("id")), "tool_type": type_, "name": _string(name),
        }))
    # Some servers repeat the id and name on every fragment: only arguments count after the first.
    fragment = body.get("input" if type_ == "custom" else "arguments")
    if fragment:
        events.append((EventType.TOOL_CALL_DELTA, {"index": index, "arguments": _string(fragment)}))
    return events


def _string(value: Any) -> Any:
    if value is not None and not isinstance(value, str):
        raise _unreadable()
    return value


def _info(obj: dict[str, Any]) -> dict[str, Any] | None:
    """What the chunk reports of the upstream itself (model, system_fingerprint, service_tier)."""
    info = {key: obj[key] for key in DONE_INFO_KEYS if obj.get(key) is not None}
    return info or None


def _without_nulls(value: dict[str, Any]) -> dict[str, Any]:
    """Like the SDK's model_dump(exclude_none=True): nulls dropped at every depth."""
    return {k: _without_nulls(v) if isinstance(v, dict) else v for k, v in value.items() if v is not None}
