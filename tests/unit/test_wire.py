"""Wire encoders and incremental decoders, fed awkward splits."""

from __future__ import annotations

import json

import pytest

from spool.decoders import LineDecoder, NDJSONDecoder, SSEDecoder, SSEMessage
from spool.events import Event, EventType, encode_data
from spool.wire import SSE_HEARTBEAT, NdjsonEncoder, SseEncoder, WireFormat, encode, event_json

SAMPLES = [
    Event.of(1, EventType.START, {"id": "abc", "model": "m", "created": 5}),
    Event.of(2, EventType.DELTA, {"text": 'naïve "quoted"\nline 🙂'}),
    Event.of(3, EventType.DONE, {"finish_reason": "stop", "usage": None}),
    Event.of(4, EventType.CANCELLED, {}),
]


@pytest.mark.parametrize("event", SAMPLES)
def test_event_json_is_the_events_dict(event):
    raw = event_json(event.seq, event.type, event.data)
    assert json.loads(raw) == event.to_dict() == {"seq": event.seq, "type": event.kind.value, **event.fields}
    assert Event.from_dict(json.loads(raw)) == event


def test_ndjson_and_sse_frames():
    data = encode_data({"text": "hi"}).encode()
    assert encode(WireFormat.NDJSON, 7, b"delta", data) == b'{"seq":7,"type":"delta","text":"hi"}\n'
    assert encode(WireFormat.SSE, 7, b"delta", data) == (
        b'id: 7\nevent: delta\ndata: {"seq":7,"type":"delta","text":"hi"}\n\n'
    )


def all_splits(payload: bytes):
    """Every way of cutting `payload` in two, plus byte-by-byte."""
    for i in range(len(payload) + 1):
        yield [payload[:i], payload[i:]]
    yield [payload[i:i + 1] for i in range(len(payload))]


def test_ndjson_decoder_survives_any_split():
    payload = b"".join(
        encode(WireFormat.NDJSON, e.seq, e.type, e.data) for e in SAMPLES
    ) + b'{"type":"heartbeat"}\n'
    expected = [e.to_dict() for e in SAMPLES] + [{"type": "heartbeat"}]
    for parts in all_splits(payload):
        decoder = NDJSONDecoder()
        got = [obj for part in parts for obj in decoder.feed(part)] + decoder.flush()
        assert got == expected


def test_sse_decoder_survives_any_split_and_skips_comments():
    frames = b"retry: 1000\n\n" + b"".join(
        encode(WireFormat.SSE, e.seq, e.type, e.data) for e in SAMPLES
    )
    payload = frames[:40] + SSE_HEARTBEAT + frames[40:] if frames[39:40] == b"\n" else SSE_HEARTBEAT + frames
    expected = [SSEMessage(json.dumps(e.to_dict()), e.kind.value, str(e.seq)) for e in SAMPLES]
    for parts in all_splits(payload):
        decoder = SSEDecoder()
        got = [m for part in parts for m in decoder.feed(part)] + decoder.flush()
        assert [(m.event, m.id, json.loads(m.data)) for m in got] == [
            (m.event, m.id, json.loads(m.data)) for m in expected
        ]


def test_sse_decoder_joins_data_lines_and_handles_crlf():
    decoder = SSEDecoder()
    assert decoder.feed(b"data: a\r\ndata: b\r\n\r\n") == [SSEMessage("a\nb")]


def test_line_decoder_keeps_a_partial_character_until_complete():
    decoder = LineDecoder()
    snowman = "☃\n".encode()
    assert decoder.feed(snowman[:1]) == []
    assert decoder.feed(snowman[1:]) == ["☃"]
    assert decoder.feed(b"tail") == [] and decoder.flush() == ["tail"]


@pytest.mark.parametrize("event", SAMPLES)
def test_the_encoders_write_the_formats_bytes_exactly(event):
    stored = event
    assert NdjsonEncoder().encode(stored) == encode(WireFormat.NDJSON, stored.seq, stored.type, stored.data)
    assert SseEncoder().encode(stored) == encode(WireFormat.SSE, stored.seq, stored.type, stored.data)
    assert NdjsonEncoder.preamble == WireFormat.NDJSON.preamble and SseEncoder.preamble == WireFormat.SSE.preamble
    assert NdjsonEncoder().queued(3) == b'{"type":"queued","queue_position":3}\n'
    assert SseEncoder().queued(3) == b'event: queued\ndata: {"type":"queued","queue_position":3}\n\n'
