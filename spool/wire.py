"""Encoders from stored Redis entries to the two wire formats (no I/O).

An entry is stored as fields `t` (type) and `d` (the type's fields as compact
JSON). Both formats carry the JSON object `{"seq":N,"type":T,...d}`; building
it by splicing bytes keeps the gateway from decoding and re-encoding JSON for
every token it relays.
"""

from __future__ import annotations

import json
from enum import Enum

from spool.openai_wire import OPENAI_HEARTBEAT, OPENAI_PREAMBLE

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


def seq_of(entry_id: bytes) -> int:
    """The seq from a Redis entry id `0-<seq>`."""
    return int(entry_id[2:])
