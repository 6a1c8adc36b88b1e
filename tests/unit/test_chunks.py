"""The worker's chunk parser, fed event-stream bytes split at awkward places,
and the upstream call that feeds it."""

from __future__ import annotations

import itertools
import json

import pytest

from mock_upstream.server import _chunk, _sse
from spool.errors import UpstreamError
from worker.chunks import ChunkParser, Piece, _events, parse_chunk
from worker.upstream import UpstreamCall

USAGE = {"prompt_tokens": 3, "completion_tokens": 2, "total_tokens": 5, "prompt_tokens_details": None}


def stream_bytes() -> bytes:
    chunks = [
        _chunk("m", {"role": "assistant", "content": ""}, None),
        _chunk("m", {"content": "café "}, None),
        _chunk("m", {"content": "日本語🙂"}, None),
        _chunk("m", {}, "stop"),
        {**_chunk("m", None, None), "choices": [], "usage": USAGE},
    ]
    return b"".join(_sse(c) for c in chunks) + b"data: [DONE]\n\n" + _sse(_chunk("m", {"content": "after"}, None))


def parse(data: bytes, size: int) -> list[Piece]:
    parser = ChunkParser()
    pieces = []
    for i in range(0, len(data), size):
        pieces += parser.feed(data[i:i + size])
    return pieces


@pytest.mark.parametrize("size", [1, 2, 3, 7, 64, 100_000])
def test_pieces_are_the_same_however_the_bytes_are_split(size):
    pieces = parse(stream_bytes(), size)
    assert "".join(p.text for p in pieces) == "café 日本語🙂"
    assert [p.finish_reason for p in pieces if p.finish_reason] == ["stop"]
    # Nulls are dropped as the SDK's model_dump(exclude_none=True) did; nothing after [DONE].
    assert [p.usage for p in pieces if p.usage] == [{"prompt_tokens": 3, "completion_tokens": 2, "total_tokens": 5}]


@pytest.mark.parametrize("body, message", [
    (b"data: {not json\n\n", "unreadable"),
    (b"data: [1, 2]\n\n", "unreadable"),
    (b'data: {"choices": [{"delta": {"content": 5}}]}\n\n', "unreadable"),
    (b'data: {"error": {"message": "overloaded"}}\n\n', "error mid-answer"),
])
def test_bad_chunks_become_upstream_errors(body, message):
    parser = ChunkParser()
    with pytest.raises(UpstreamError, match=message) as caught:
        parser.feed(_sse(_chunk("m", {"content": "ok"}, None)) + body)
    assert caught.value.code == "upstream_error"
    # The upstream's own words are never echoed.
    assert "overloaded" not in caught.value.message


def test_an_event_is_parsed_once_its_blank_line_arrives():
    parser = ChunkParser()
    assert parser.feed(b"data: " + json.dumps(_chunk("m", {"content": "x"}, "stop")).encode()) == []
    assert parser.feed(b"\n\n") == [Piece("x", "stop", info={"model": "m"})]


class FakeResponse:
    """Stands in for the SDK's streaming response and its httpx response
    (`http_response`, read raw): yields `chunks`, counts reads."""

    def __init__(self, chunks):
        self.chunks = chunks
        self.read = 0
        self.closed = False
        self.http_response = self
        self.headers = {}

    def iter_raw(self):
        for chunk in self.chunks:
            self.read += 1
            yield chunk

    def close(self):
        self.closed = True


def test_a_call_reads_the_body_to_its_end_after_done_so_the_connection_is_reused():
    response = FakeResponse([b'data: {"choices":[{"delta":{"content":"hi"},"finish_reason":"stop"}]}\n\n',
                             b"data: [DONE]\n\n", b""])
    assert [p.text for p in UpstreamCall(response)] == ["hi"]
    assert response.read == 3 and response.closed


def test_an_upstream_that_keeps_sending_after_done_is_cut_off():
    endless = itertools.chain([b"data: [DONE]\n\n"], itertools.repeat(b"x" * 1024))
    response = FakeResponse(endless)
    assert list(UpstreamCall(response)) == []
    assert response.read < 100 and response.closed


def rich_stream_bytes(reasoning_key: str) -> bytes:
    """Reasoning, text with logprobs, a refusal and two tool calls whose id and
    name some servers repeat on every fragment, then the final report."""
    logprobs = {"content": [{"token": "Hi", "logprob": -0.1, "bytes": [72, 105], "top_logprobs": []}], "refusal": None}
    call = {"index": 0, "id": "call_1", "type": "function", "function": {"name": "f", "arguments": ""}}
    chunks = [
        {**_chunk("m", {"role": "assistant", "content": None, reasoning_key: None}, None), "system_fingerprint": "fp"},
        _chunk("m", {reasoning_key: "think "}, None),
        _chunk("m", {reasoning_key: "more 🙂"}, None),
        {**_chunk("m", {"content": "Hi"}, None), "choices": [{"index": 0, "delta": {"content": "Hi"},
                                                               "logprobs": logprobs, "finish_reason": None}]},
        _chunk("m", {"refusal": "no"}, None),
        _chunk("m", {"tool_calls": [call]}, None),
        _chunk("m", {"tool_calls": [{**call, "function": {"name": "f", "arguments": '{"a": "日'}}]}, None),
        _chunk("m", {"tool_calls": [{"index": 0, "function": {"arguments": '本"}'}},
                                    {"index": 1, "id": "c2", "type": "custom", "custom": {"name": "sh", "input": "ls"}}]},
               None),
        {**_chunk("m-2024", {}, "tool_calls"), "system_fingerprint": "fp"},
        {**_chunk("m-2024", None, None), "choices": [], "usage": USAGE, "system_fingerprint": "fp",
         "service_tier": "default"},
    ]
    return b"".join(_sse(c) for c in chunks) + b"data: [DONE]\n\n"


@pytest.mark.parametrize("reasoning_key", ["reasoning_content", "reasoning"])
@pytest.mark.parametrize("size", [1, 5, 100_000])
def test_every_part_of_a_message_becomes_its_events_in_order(reasoning_key, size):
    pieces = parse(rich_stream_bytes(reasoning_key), size)
    events = [(t.value, d) for p in pieces for t, d in p.events]
    assert events == [
        ("reasoning", {"text": "think "}),
        ("reasoning", {"text": "more 🙂"}),
        ("delta", {"text": "Hi"}),
        ("logprobs", {"content": [{"token": "Hi", "logprob": -0.1, "bytes": [72, 105], "top_logprobs": []}]}),
        ("refusal", {"text": "no"}),
        ("tool_call", {"index": 0, "id": "call_1", "tool_type": "function", "name": "f"}),
        ("tool_call_delta", {"index": 0, "arguments": '{"a": "日'}),
        ("tool_call_delta", {"index": 0, "arguments": '本"}'}),
        ("tool_call", {"index": 1, "id": "c2", "tool_type": "custom", "name": "sh"}),
        ("tool_call_delta", {"index": 1, "arguments": "ls"}),
    ]
    assert all(not p.text for p in pieces)  # in events, in order, when a chunk is more than text
    assert [p.finish_reason for p in pieces if p.finish_reason] == ["tool_calls"]
    assert [p.info for p in pieces if p.info] == [
        {"model": "m-2024", "system_fingerprint": "fp"},
        {"model": "m-2024", "system_fingerprint": "fp", "service_tier": "default"},
    ]
    assert [p.usage for p in pieces if p.usage] == [{"prompt_tokens": 3, "completion_tokens": 2, "total_tokens": 5}]


def test_plain_text_chunks_stay_plain_even_with_null_fields():
    chunk = {**_chunk("m", {"content": "x", "refusal": None, "tool_calls": None}, None), "system_fingerprint": "fp"}
    assert parse(_sse(chunk), 100) == [Piece("x")]


@pytest.mark.parametrize("delta", [
    {"tool_calls": {"index": 0}},
    {"tool_calls": [{"index": "0", "function": {"arguments": "x"}}]},
    {"tool_calls": [{"index": 0, "function": "f"}]},
    {"reasoning_content": 5},
])
def test_malformed_parts_are_unreadable(delta):
    with pytest.raises(UpstreamError, match="unreadable"):
        ChunkParser().feed(_sse(_chunk("m", delta, None)))


@pytest.mark.parametrize("call", [
    {"index": 0, "function": {"arguments": "{\"q\""}},               # the common fragment: the short path
    {"index": 1, "function": {"arguments": "x"}},                     # a call not begun: the general path
    {"index": 0, "function": {"arguments": ""}},                      # nothing to add
    {"index": 0, "id": "call_1", "function": {"arguments": "x"}},     # repeats its id
    {"index": 0, "function": {"name": "f", "arguments": "x"}},        # repeats its name
])
def test_a_tool_calls_next_fragment_reads_as_the_general_path_reads_it(call):
    data = json.dumps({"choices": [{"index": 0, "delta": {"tool_calls": [call]}, "finish_reason": None}]})
    general = _events({"tool_calls": [call]}, None, None, {0: "function"})
    piece = parse_chunk(data, {0: "function"})
    assert (piece.events if piece else ()) == general
