"""The line and event-stream decoders: every WHATWG line ending, split anywhere."""

from __future__ import annotations

import pytest

from spool.decoders import LineDecoder, NDJSONDecoder, SSEDecoder, SSEMessage


def every_split(payload: bytes):
    """`payload` cut in two at every position, in three at every pair, and byte by byte."""
    n = len(payload)
    for i in range(n + 1):
        yield [payload[:i], payload[i:]]
        for j in range(i, n + 1):
            yield [payload[:i], payload[i:j], payload[j:]]
    yield [payload[i:i + 1] for i in range(n)]


def decode_lines(parts: list[bytes]) -> list[str]:
    decoder = LineDecoder()
    return [line for part in parts for line in decoder.feed(part)] + decoder.flush()


@pytest.mark.parametrize("ending", [b"\n", b"\r\n", b"\r"])
def test_lines_end_at_each_whatwg_line_ending(ending):
    payload = ending.join([b"one", b"", "tw\u00f6".encode(), b"three"]) + ending
    for parts in every_split(payload):
        assert decode_lines(parts) == ["one", "", "tw\u00f6", "three"], parts


def test_mixed_line_endings_and_an_unterminated_last_line():
    payload = b"a\rb\r\nc\n\r\nd\r\re"
    for parts in every_split(payload):
        assert decode_lines(parts) == ["a", "b", "c", "", "d", "", "e"], parts


def test_a_line_ended_by_cr_is_returned_before_the_next_chunk():
    decoder = LineDecoder()
    assert decoder.feed(b"data: x\r") == ["data: x"]
    assert decoder.feed(b"\n") == []  # the second half of that \r\n
    assert decoder.feed(b"\n") == [""]


@pytest.mark.parametrize("ending", [b"\n", b"\r\n", b"\r"])
def test_sse_decoder_parses_each_line_ending_split_anywhere(ending):
    lines = [b": comment", b"retry: 5", b"id: 1", b"event: delta", b"data: {\"a\":1}", b"data: two", b"",
             b"id: 2", b"data: last", b"", b"data: unterminated"]
    payload = ending.join(lines)
    expected = [SSEMessage('{"a":1}\ntwo', "delta", "1"), SSEMessage("last", "message", "2")]
    for parts in every_split(payload):
        decoder = SSEDecoder()
        got = [m for part in parts for m in decoder.feed(part)] + decoder.flush()
        assert got == expected, parts


def test_ndjson_decoder_accepts_crlf():
    for parts in every_split(b'{"a":1}\r\n{"b":2}\r\n'):
        decoder = NDJSONDecoder()
        assert [o for p in parts for o in decoder.feed(p)] + decoder.flush() == [{"a": 1}, {"b": 2}]


def test_sse_fields_by_the_whatwg_rules():
    # `data` without a colon is an empty line of data; one space after the
    # colon is dropped, a second kept; comments are skipped; `event` and `id`
    # belong to the event they precede.
    body = b"data\ndata: x\n\n: a comment\nevent: e\nid: 7\ndata:y\n\ndata:  two\n\n"
    assert SSEDecoder().feed(body) == [
        SSEMessage("\nx"), SSEMessage("y", "e", "7"), SSEMessage(" two"),
    ]
