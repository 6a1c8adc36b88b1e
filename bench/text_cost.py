"""CPU per chunk, in one process and without I/O, for a plain-text answer and
for a tool call's arguments: the worker's parse and publish, the store's
append-call build, and the gateway's NDJSON and SSE encoding. 10,000 chunks
each, CPU time (process_time), the best of 15 runs.

    .venv/bin/python -m bench.text_cost

Compares one tree's per-chunk CPU with another's on a shared machine, where
wall-clock figures are noise; and shows whether a tool call's chunks cost
more than text's. Not part of `make bench`.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable

import fakeredis

from spool.events import Event, EventType
from spool.keys import Keys, new_stream_id
from spool.streams import AppendRequest, StreamStore
from spool.wire import NdjsonEncoder, SseEncoder
from worker.chunks import ChunkParser, Piece
from worker.publisher import Publisher

N = 10_000
RUNS = 15

# One chunk of each kind, as the OpenAI API sends them.
TEXT_DELTA = {"content": " word"}
TOOL_DELTA = {"tool_calls": [{"index": 0, "function": {"arguments": "word"}}]}
TOOL_OPENING = {"tool_calls": [{"index": 0, "id": "call_1", "type": "function",
                                "function": {"name": "lookup", "arguments": ""}}]}


def sse_body(first: dict | None, delta: dict) -> bytes:
    """N chunks of `delta` (after `first`, when given) as an SSE body."""
    def frame(d: dict) -> bytes:
        chunk = {"id": "chatcmpl-x", "object": "chat.completion.chunk", "created": 1,
                 "model": "gpt-4o-mini-2024-07-18", "system_fingerprint": "fp_1", "service_tier": "default",
                 "choices": [{"index": 0, "delta": d, "logprobs": None, "finish_reason": None}]}
        return b"data: " + json.dumps(chunk).encode() + b"\n\n"
    return (frame(first) if first else b"") + frame(delta) * N


def best(run: Callable[[], None]) -> float:
    """The best of RUNS runs of `run` (N items each), in µs per item."""
    times = []
    for _ in range(RUNS):
        started = time.process_time()
        run()
        times.append(time.process_time() - started)
    return min(times) * 1e6 / N


def parse(body: bytes) -> list[Piece]:
    """The worker's parse, fed in 4 KiB reads."""
    parser, pieces = ChunkParser(), []
    for i in range(0, len(body), 4096):
        pieces += parser.feed(body[i:i + 4096])
    return pieces


def publish(store: StreamStore, pieces: list[Piece]) -> None:
    """What worker/generation.py does with each piece (no flush: no I/O)."""
    stream_id = new_stream_id()
    store.create(stream_id, {"model": "m", "messages": []})
    store.leases.acquire(stream_id, 30, "w")
    publisher = Publisher(store, stream_id, "w", first_seq=2, interval=60.0, outage_window=5)
    for piece in pieces:
        if piece.text:
            publisher.delta(piece.text)
        else:
            for type_, data in piece.events:
                publisher.add(type_, data)


def measure(kind: str, body: bytes, event: tuple[EventType, dict]) -> str:
    """One line of figures for one kind of chunk."""
    store = StreamStore(fakeredis.FakeRedis(), Keys("bench"), 60)
    pieces = parse(body)
    append = AppendRequest("s", "w", 2, [event])
    stored = [Event.of(i, *event) for i in range(N)]
    ndjson, sse = NdjsonEncoder(), SseEncoder()
    figures = {
        "parse": best(lambda: parse(body)),
        "publish": best(lambda: publish(store, pieces)),
        "append_call": best(lambda: [store._append_call(append) for _ in range(N)]),
        "ndjson": best(lambda: [ndjson.encode(e) for e in stored]),
        "sse": best(lambda: [sse.encode(e) for e in stored]),
    }
    return f"{kind:<10}" + "  ".join(f"{name} {value:.3f}" for name, value in figures.items()) + "  (µs per chunk)"


def main() -> None:
    print(measure("text", sse_body(None, TEXT_DELTA), (EventType.DELTA, {"text": " word"})))
    print(measure("tool call", sse_body(TOOL_OPENING, TOOL_DELTA),
                  (EventType.TOOL_CALL_DELTA, {"index": 0, "arguments": "word"})))


if __name__ == "__main__":
    main()
