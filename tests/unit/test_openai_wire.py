"""The openai wire format, checked with the openai SDK's own SSE decoder."""

from __future__ import annotations

import json

import pytest
from openai._streaming import SSEDecoder as SDKDecoder

from spool.message import MessageFold
from spool.openai_wire import ChunkContext, OpenAIEncoder, completion, error_body
from spool.events import Event
from spool.wire import WireFormat

CTX = ChunkContext("chatcmpl-abc", "m", 1700000000, include_usage=True)


def encode_openai(ctx: ChunkContext, seq: int, type_: bytes, data: bytes) -> bytes:
    """One event through a fresh encoder."""
    return OpenAIEncoder(ctx).encode(Event(seq, type_, data))


def sdk_events(raw: bytes) -> list:
    """What the SDK dispatches from `raw`, fed one byte at a time."""
    return list(SDKDecoder().iter_bytes(iter([raw[i:i + 1] for i in range(len(raw))])))


def whole_stream() -> bytes:
    return b"".join([
        WireFormat.OPENAI.preamble,
        encode_openai(CTX, 1, b"start", b'{"id":"abc","model":"m","created":1}'),
        WireFormat.OPENAI.heartbeat,
        encode_openai(CTX, 2, b"delta", '{"text":"caf\u00e9"}'.encode()),
        WireFormat.OPENAI.heartbeat,
        encode_openai(CTX, 3, b"done", b'{"finish_reason":"stop","usage":{"completion_tokens":1}}'),
    ])


def test_sdk_decoder_sees_only_chunks_and_done_despite_heartbeats():
    events = sdk_events(whole_stream())
    assert [e.id for e in events] == ["1", "2", "3", "3", "3"]
    assert events[-1].data == "[DONE]"
    chunks = [json.loads(e.data) for e in events[:-1]]
    assert chunks[0]["choices"][0]["delta"] == {"role": "assistant"}
    assert chunks[1]["choices"][0]["delta"] == {"content": "café"}
    assert chunks[2]["choices"][0] == {"index": 0, "delta": {}, "finish_reason": "stop"}
    assert chunks[3]["choices"] == [] and chunks[3]["usage"] == {"completion_tokens": 1}
    assert {c["id"] for c in chunks} == {"chatcmpl-abc"}


def test_usage_chunk_only_when_asked():
    ctx = ChunkContext("chatcmpl-abc", "m", 1)
    events = sdk_events(encode_openai(ctx, 3, b"done", b'{"finish_reason":"length","usage":null}'))
    assert [e.data for e in events][-1] == "[DONE]" and len(events) == 2


@pytest.mark.parametrize("type_,data,code", [
    (b"error", b'{"code":"upstream_timeout","message":"slow"}', "upstream_timeout"),
    (b"cancelled", b"{}", "cancelled"),
])
def test_terminal_failures_become_error_objects(type_, data, code):
    (event,) = sdk_events(encode_openai(CTX, 9, type_, data))
    error = json.loads(event.data)["error"]
    assert error["code"] == code and set(error) == {"message", "type", "param", "code"}


def test_unknown_type_is_refused():
    with pytest.raises(ValueError):
        encode_openai(CTX, 1, b"mystery", b"{}")


def test_error_body_types_follow_status():
    assert error_body("upstream_rate_limited", "x")["error"]["type"] == "rate_limit_error"
    assert error_body("whatever", "x", "invalid_request_error", "model")["error"]["param"] == "model"


def test_completion_shape():
    folded = MessageFold()
    folded.add("delta", {"text": "hi"})
    folded.add("done", {"finish_reason": "stop", "usage": {"total_tokens": 3}})
    body = completion(CTX, folded)
    assert body["object"] == "chat.completion"
    assert body["choices"][0]["message"] == {"role": "assistant", "content": "hi", "refusal": None}
    assert body["choices"][0]["finish_reason"] == "stop" and body["usage"] == {"total_tokens": 3}


def test_an_error_answers_with_the_upstreams_4xx_and_spools_status_otherwise():
    from spool.openai_wire import error_status

    assert error_status({"code": "upstream_rejected", "message": "m", "status": 404}) == 404
    assert error_status({"code": "upstream_error", "message": "m", "status": 500}) == 502
    assert error_status({"code": "upstream_rate_limited", "message": "m", "status": 429}) == 429
    assert error_status({"code": "worker_lost", "message": "m"}) == 503
