"""Plain-text cost per text chunk, in one process, without I/O: the worker's
parse and publish, the store's append-call build, the gateway's NDJSON and
SSE encoding; 10,000 chunks, CPU time (process_time), min of 15 runs.

    .venv/bin/python -m bench.text_cost

Compares a change's per-chunk CPU with another tree's on a shared machine,
where wall-clock figures are noise. Not part of `make bench`.
"""
import json, time
import fakeredis
from worker.chunks import ChunkParser
from worker.publisher import Publisher
from spool.streams import StreamStore, AppendRequest
from spool.events import Event
from spool.keys import Keys, new_stream_id
from spool.events import EventType
from spool import wire

N = 10_000
def chunk(delta, fr=None):
    return {"id": "chatcmpl-x", "object": "chat.completion.chunk", "created": 1, "model": "gpt-4o-mini-2024-07-18",
            "system_fingerprint": "fp_1", "service_tier": "default",
            "choices": [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": fr}]}
body = b"".join(b"data: " + json.dumps(chunk({"content": " word"})).encode() + b"\n\n" for _ in range(N))
def best(f, n=15):
    ts = []
    for _ in range(n):
        t = time.process_time(); f(); ts.append(time.process_time() - t)
    return min(ts) * 1e6 / N
def parse():
    p = ChunkParser(); out = []
    for i in range(0, len(body), 4096):
        out += p.feed(body[i:i+4096])
    assert len(out) == N
pieces = ChunkParser().feed(body)
store = StreamStore(fakeredis.FakeRedis(), Keys("b"), 60)
def publish_run():
    sid = new_stream_id(); store.create(sid, {"model": "m", "messages": []}); store.leases.acquire(sid, 30, "w")
    pub = Publisher(store, sid, "w", first_seq=2, interval=60.0, outage_window=5)
    pub.delta("x")
    t = time.process_time()
    for piece in pieces:
        if piece.text:
            pub.delta(piece.text)
    return (time.process_time() - t) * 1e6 / N
req = AppendRequest("s", "w", 2, [(EventType.DELTA, {"text": " word"})])
def append_calls():
    for _ in range(N):
        store._append_call(req)
events = [Event(i, b"delta", b'{"text":" word"}') for i in range(N)]
if hasattr(wire, "NdjsonEncoder"):  # after the encoders (issue 13); else the functions before them
    enc, sse = wire.NdjsonEncoder(), wire.SseEncoder()
    def ndjson():
        for e in events: enc.encode(e)
    def ssef():
        for e in events: sse.encode(e)
else:
    def ndjson():
        for e in events: wire.encode(wire.WireFormat.NDJSON, e.seq, e.type, e.data)
    def ssef():
        for e in events: wire.encode(wire.WireFormat.SSE, e.seq, e.type, e.data)
print(f"parse {best(parse):.2f}  publish {min(publish_run() for _ in range(15)):.3f}  "
      f"append_call {best(append_calls):.3f}  ndjson {best(ndjson):.3f}  sse {best(ssef):.3f}  (us per chunk)")
