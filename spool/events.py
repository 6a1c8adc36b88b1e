"""The event model: stream statuses, event types and the Event value.

StreamStatus.is_terminal is the one definition of a stream's end: the Redis
scripts get it generated from here (spool/streams/scripts.py)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import cached_property
from enum import Enum
from typing import Any


class StreamStatus(str, Enum):
    """Where a stream is in its life."""

    QUEUED = "queued"
    RUNNING = "running"
    DONE = "done"
    ERROR = "error"
    CANCELLED = "cancelled"

    @property
    def is_terminal(self) -> bool:
        return self in _TERMINAL_STATUSES


class EventType(str, Enum):
    """The kinds of event a stream holds (docs/protocol.md)."""

    START = "start"
    DELTA = "delta"
    RESET = "reset"  # the answer starts over: discard everything received so far
    REASONING = "reasoning"  # reasoning text, as compatible servers stream it
    REFUSAL = "refusal"  # refusal text
    # A tool call begins: index, id, tool_type ("function" or "custom"), name.
    # (Not `type`: the wire object's `type` is the event's.)
    TOOL_CALL = "tool_call"
    TOOL_CALL_DELTA = "tool_call_delta"  # a fragment of a tool call's arguments
    LOGPROBS = "logprobs"  # logprobs as the upstream sent them
    DONE = "done"
    ERROR = "error"
    CANCELLED = "cancelled"

    @property
    def is_terminal(self) -> bool:
        """A terminal event ends the stream with the status of its name."""
        return self.value in _TERMINAL_VALUES


# The field that carries the text of each coalescable type: consecutive
# events of one of these types (of one tool call) concatenate.
TEXT_FIELD = {
    EventType.DELTA: "text",
    EventType.REASONING: "text",
    EventType.REFUSAL: "text",
    EventType.TOOL_CALL_DELTA: "arguments",
}
# The optional keys of `done` that report what the upstream said about itself.
DONE_INFO_KEYS = ("model", "system_fingerprint", "service_tier")

# The one definition of a stream's end (and of the events that end it).
_TERMINAL_STATUSES = frozenset({StreamStatus.DONE, StreamStatus.ERROR, StreamStatus.CANCELLED})
_TERMINAL_VALUES = frozenset(status.value for status in _TERMINAL_STATUSES)


@dataclass(frozen=True)
class Event:
    """One event of a stream, as stored: its seq, its type's name and its
    fields as compact JSON, both still encoded. The wire encoders splice
    these bytes as they are, so relaying a token decodes nothing; `kind`
    and `fields` decode them on demand."""

    seq: int
    type: bytes
    data: bytes

    @property
    def is_terminal(self) -> bool:
        return self.type in _TERMINAL_TYPES

    @property
    def kind(self) -> EventType:
        """The type, decoded."""
        return EventType(self.type.decode())

    @cached_property
    def fields(self) -> dict[str, Any]:
        """The type's own fields, decoded (once)."""
        return json.loads(self.data)

    @classmethod
    def of(cls, seq: int, type_: EventType, fields: dict[str, Any]) -> Event:
        """The event of type `type_` with `fields`, encoded as it is stored."""
        return cls(seq, type_.value.encode(), encode_data(fields).encode())

    @classmethod
    def from_entry(cls, entry_id: bytes, entry: dict[bytes, bytes]) -> Event:
        """The event of one raw Redis Stream entry (id `0-<seq>`, fields t and d)."""
        return cls(int(entry_id[2:]), entry[b"t"], entry[b"d"])

    def to_dict(self) -> dict[str, Any]:
        """The JSON object clients see: seq, type, then the type's fields."""
        return {"seq": self.seq, "type": self.type.decode(), **self.fields}

    @classmethod
    def from_dict(cls, obj: dict[str, Any]) -> Event:
        """Parse a wire object back into an Event (the inverse of to_dict)."""
        fields = {k: v for k, v in obj.items() if k not in ("seq", "type")}
        return cls.of(int(obj["seq"]), EventType(obj["type"]), fields)


_TERMINAL_TYPES = frozenset(t.value.encode() for t in EventType if t.is_terminal)


def start_data(stream_id: str, model: str, created_at: float) -> dict[str, Any]:
    """The `start` event's data for a stream created at `created_at`."""
    return {"id": stream_id, "model": model, "created": int(created_at)}


# json.dumps builds a new encoder for each call with options; one kept is ~40% cheaper per event.
_COMPACT = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False)


def compact_json(obj: Any) -> str:
    """`obj` as compact JSON, non-ASCII kept: how events are stored and sent."""
    return _COMPACT.encode(obj)


def encode_data(data: dict[str, Any]) -> str:
    """Compact JSON for an event's fields, as stored in Redis."""
    return compact_json(data)
