"""Wire formats: encoders from stored events to the bytes a client reads (no I/O).

An entry is stored as fields `t` (type) and `d` (the type's fields as compact
JSON). NDJSON and SSE carry the JSON object `{"seq":N,"type":T,...d}`;
building it by splicing bytes keeps the gateway from decoding and re-encoding
JSON for every token it relays.

Every format is an `Encoder`, driven by the one follow loop (spool/tail.py
`follow`): it opens the response with `preamble`, fills quiet intervals with
`heartbeat` (or `queued(position)` while the stream waits in the queue),
turns each event into bytes with `encode(event)` (b"" to send nothing),
and, when the stream stops before its terminal event (the gateway lost
Redis), sends `interrupted()` so the client resumes. An encoder that needs
the events before the resume point to encode what follows (the OpenAI
format must know a tool call's type to encode its arguments) sets
`wants_history`; the loop then passes those events to `observe(event)`
first. Setting `finished` ends the response after the event just encoded.
"""

from __future__ import annotations

import json
from enum import Enum

from spool.events import Event

OPENAI_HEARTBEAT = b": heartbeat\n"
OPENAI_PREAMBLE = b": stream\n"

NDJSON_HEARTBEAT = b'{"type":"heartbeat"}\n'
SSE_HEARTBEAT = b": heartbeat\n\n"
# Sent first, so the response's headers (X-Stream-Id) reach the client at
# once even while the answer waits in the queue. The SSE one also asks
# EventSource to reconnect after 1 s instead of its default 3 s.
NDJSON_PREAMBLE = NDJSON_HEARTBEAT
SSE_PREAMBLE = b"retry: 1000\n\n"


class WireFormat(str, Enum):
    """The stream encodings a client may ask for."""

    NDJSON = "ndjson"
    SSE = "sse"
    OPENAI = "openai"  # chat.completion.chunk SSE (spool/openai_wire.py)

    @property
    def mimetype(self) -> str:
        return "application/x-ndjson" if self is WireFormat.NDJSON else "text/event-stream"

    @property
    def heartbeat(self) -> bytes:
        return {WireFormat.NDJSON: NDJSON_HEARTBEAT, WireFormat.SSE: SSE_HEARTBEAT}.get(self, OPENAI_HEARTBEAT)

    @property
    def preamble(self) -> bytes:
        return {WireFormat.NDJSON: NDJSON_PREAMBLE, WireFormat.SSE: SSE_PREAMBLE}.get(self, OPENAI_PREAMBLE)


def event_json(seq: int, type_: bytes, data: bytes) -> bytes:
    """The event's JSON object from its stored parts."""
    head = b'{"seq":%d,"type":"%s"' % (seq, type_)
    if data == b"{}":
        return head + b"}"
    return head + b"," + data[1:]


def encode(fmt: WireFormat, seq: int, type_: bytes, data: bytes) -> bytes:
    """One event in `fmt`: an NDJSON line or an SSE frame."""
    payload = event_json(seq, type_, data)
    if fmt is WireFormat.NDJSON:
        return payload + b"\n"
    # JSON never holds a raw newline, so one `data:` line carries it whole.
    return b"id: %d\nevent: %s\ndata: %s\n\n" % (seq, type_, payload)


def encode_info(fmt: WireFormat, obj: dict) -> bytes:
    """A line that is not a stored event (no seq), such as the queue position:
    an NDJSON line, or an SSE event without `id` (which keeps Last-Event-ID)."""
    payload = json.dumps(obj, separators=(",", ":")).encode()
    if fmt is WireFormat.NDJSON:
        return payload + b"\n"
    return b"event: %s\ndata: %s\n\n" % (obj["type"].encode(), payload)


class Encoder:
    """One wire format of a followed stream (see the module docstring).
    Subclasses set the class attributes and implement `encode`."""

    name = ""  # the `format` label of the gateway's metrics
    mimetype = "text/event-stream"
    preamble = b""
    heartbeat = b""
    wants_history = False
    # Whether `queued` says more than a heartbeat: only then does a follower
    # ask Redis for the stream's place in the queue.
    reports_queue = False

    def __init__(self) -> None:
        self.finished = False

    def observe(self, event: Event) -> None:
        """Take note of an event before the resume point (only with wants_history)."""

    def encode(self, event: Event) -> bytes:
        """The bytes for one event; may set `finished`."""
        raise NotImplementedError

    def queued(self, position: int) -> bytes:
        """What a quiet interval sends while the stream is queued at `position`."""
        return self.heartbeat

    def interrupted(self) -> bytes:
        """What ends a response cut before the terminal event (the client resumes)."""
        return b""


class NdjsonEncoder(Encoder):
    """One event JSON object per line."""

    name = WireFormat.NDJSON.value
    mimetype = WireFormat.NDJSON.mimetype
    preamble = NDJSON_PREAMBLE
    heartbeat = NDJSON_HEARTBEAT
    reports_queue = True

    def encode(self, event: Event) -> bytes:
        return event_json(event.seq, event.type, event.data) + b"\n"

    def queued(self, position: int) -> bytes:
        return encode_info(WireFormat.NDJSON, {"type": "queued", "queue_position": position})


class SseEncoder(Encoder):
    """One SSE frame per event: `id` is the seq, `event` the type."""

    name = WireFormat.SSE.value
    preamble = SSE_PREAMBLE
    heartbeat = SSE_HEARTBEAT
    reports_queue = True

    def encode(self, event: Event) -> bytes:
        # JSON never holds a raw newline, so one `data:` line carries it whole.
        return b"id: %d\nevent: %s\ndata: %s\n\n" % (event.seq, event.type, event_json(event.seq, event.type, event.data))

    def queued(self, position: int) -> bytes:
        return encode_info(WireFormat.SSE, {"type": "queued", "queue_position": position})
