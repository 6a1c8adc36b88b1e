"""run_generation with a scripted upstream, on fakeredis."""

from __future__ import annotations

import threading

import fakeredis
import pytest

from gateway.snapshot import snapshot
from spool.errors import StreamClosedError, UpstreamError
from spool.events import EventType
from spool.keys import Keys, new_stream_id
from spool.settings import Settings
from spool.streams import StreamStore
from worker.generation import GenerationContext, GenerationFailed, Generations, run_generation
from worker.publisher import Flusher
from worker.upstream import Piece

REQUEST = {"messages": [{"role": "user", "content": "hi"}], "model": "m", "temperature": None, "max_tokens": None}


class ScriptedCall:
    """Yields the script's pieces; an exception in the script is raised, a
    callable called, and a Pause blocks until released (a slow upstream)."""

    def __init__(self, script):
        self.script = script
        self.closed = threading.Event()

    def __iter__(self):
        for item in self.script:
            if isinstance(item, BaseException):
                raise item
            if callable(item):
                item()
                continue
            if isinstance(item, Pause):
                item.reached.set()
                item.release.wait(5)
                if self.closed.is_set():
                    raise UpstreamError("upstream_unreachable", "closed")
                continue
            yield item

    def close(self):
        self.closed.set()


class Pause:
    """A point in the script where the upstream goes quiet until released."""

    def __init__(self):
        self.reached = threading.Event()
        self.release = threading.Event()


class ScriptedUpstream:
    def __init__(self, *script):
        self.call = ScriptedCall(script)
        self.requests = []

    def open(self, request):
        self.requests.append(request)
        return self.call


@pytest.fixture
def store(prefix):
    return StreamStore(fakeredis.FakeRedis(), Keys(prefix), 3600)


@pytest.fixture
def flusher(store):
    flusher = Flusher(store, 0.01)
    flusher.start()
    yield flusher
    flusher.stop()


def run(store, flusher, upstream, generations=None, sid=None, coalesce_ms=20, **settings):
    sid = sid or new_stream_id()
    if not store.redis.exists(store.keys.meta(sid)):
        store.create(sid, REQUEST)
    ctx = GenerationContext(Settings(coalesce_ms=coalesce_ms, **settings), store, upstream, Generations() if generations is None else generations, flusher)
    return sid, run_generation(ctx, sid)


def written(store, sid):
    import json

    return [(e.type.decode(), json.loads(e.data)) for e in store.read(sid, 0)]


def test_an_answer_is_written_start_deltas_done(store, flusher):
    upstream = ScriptedUpstream(Piece("Hel"), Piece("lo"), Piece(finish_reason="stop"), Piece(usage={"total_tokens": 2}))
    sid, outcome = run(store, flusher, upstream)
    assert outcome == "done"
    events = written(store, sid)
    assert events[0] == ("start", {"id": sid, "model": "m", "created": events[0][1]["created"]})
    assert "".join(d["text"] for t, d in events if t == "delta") == "Hello"
    assert events[-1] == ("done", {"finish_reason": "stop", "usage": {"total_tokens": 2}})
    assert upstream.requests == [REQUEST]


def test_the_lease_writes_start_so_the_model_is_asked_one_round_trip_sooner(store, flusher):
    before_model = []
    append = store.append
    store.append = lambda *a, **kw: before_model.append(a) or append(*a, **kw)
    upstream = ScriptedUpstream(Piece("Hi"), Piece(finish_reason="stop"))
    upstream_open = upstream.open
    upstream.open = lambda request: before_model.append("model asked") or upstream_open(request)
    sid, outcome = run(store, flusher, upstream)
    assert outcome == "done"
    assert before_model[0] == "model asked"  # no append went before it
    assert [t for t, _ in written(store, sid)] == ["start", "delta", "done"]


def test_deltas_are_coalesced_but_the_first_goes_alone(store, flusher):
    pieces = [Piece(f"{i} ") for i in range(200)] + [Piece(finish_reason="length")]
    sid, _ = run(store, flusher, ScriptedUpstream(*pieces))
    deltas = [d["text"] for t, d in written(store, sid) if t == "delta"]
    assert deltas[0] == "0 "
    assert "".join(deltas) == "".join(f"{i} " for i in range(200))
    assert len(deltas) < 20


def test_an_answer_without_finish_reason_is_a_truncation_error(store, flusher):
    with pytest.raises(GenerationFailed, match="upstream_truncated"):
        run(store, flusher, ScriptedUpstream(Piece("partial")), sid=(sid := new_stream_id()))
    assert written(store, sid)[-1][0] == "error"
    assert written(store, sid)[-1][1]["code"] == "upstream_truncated"
    assert store.meta(sid).status == "error"


def test_upstream_errors_keep_the_text_sent_and_end_in_error(store, flusher):
    upstream = ScriptedUpstream(Piece("a"), UpstreamError("upstream_timeout", "the model did not answer in time"))
    with pytest.raises(GenerationFailed):
        run(store, flusher, upstream, sid=(sid := new_stream_id()), upstream_reset_retries=0)
    assert written(store, sid)[1:] == [
        ("delta", {"text": "a"}),
        ("error", {"code": "upstream_timeout", "message": "the model did not answer in time"}),
    ]


def test_cancel_closes_the_upstream_call_and_writes_cancelled(store, flusher):
    pause = Pause()
    upstream = ScriptedUpstream(Piece("a"), pause, Piece("never"), Piece(finish_reason="stop"))
    generations = Generations()
    sid = new_stream_id()
    store.create(sid, REQUEST)
    result = {}
    thread = threading.Thread(target=lambda: result.update(outcome=run(store, flusher, upstream, generations, sid)[1]))
    thread.start()
    assert pause.reached.wait(5)
    assert generations.cancel(sid)
    pause.release.set()
    thread.join(timeout=5)
    assert result["outcome"] == "cancelled"
    assert upstream.call.closed.is_set()
    assert written(store, sid)[-1] == ("cancelled", {})
    assert "never" not in str(written(store, sid))


def test_a_cancel_flag_seen_on_write_stops_the_generation(store, flusher):
    sid = new_stream_id()
    store.create(sid, REQUEST)

    # The gateway flags the running stream; no pub/sub message reaches this process.
    flag = lambda: store.cancel(sid)  # noqa: E731
    upstream = ScriptedUpstream(Piece("a"), flag, Piece("b"), Piece("c"), Piece(finish_reason="stop"))
    # Every delta is written at once, so the write of "b" returns the flag.
    _, outcome = run(store, flusher, upstream, sid=sid, coalesce_ms=0)
    assert outcome == "cancelled"
    assert "c" not in [d.get("text") for _, d in written(store, sid)]
    assert written(store, sid)[-1] == ("cancelled", {})


def test_a_stream_cancelled_while_queued_is_not_started(store, flusher):
    sid = new_stream_id()
    store.create(sid, REQUEST)
    store.cancel(sid)
    upstream = ScriptedUpstream(Piece("x"), Piece(finish_reason="stop"))
    assert run(store, flusher, upstream, sid=sid)[1] == "cancelled"
    assert upstream.requests == []
    assert written(store, sid) == [("cancelled", {})]


def test_an_expired_stream_is_skipped(store, flusher):
    ctx = GenerationContext(Settings(), store, ScriptedUpstream(), Generations(), flusher)
    assert run_generation(ctx, new_stream_id()) == "missing"


class SequenceUpstream:
    """A different script for each call."""

    def __init__(self, *scripts):
        self.calls = [ScriptedCall(script) for script in scripts]
        self.opened = 0

    def open(self, request):
        self.opened += 1
        return self.calls[self.opened - 1]


def test_a_failure_mid_answer_reruns_with_reset(store, flusher):
    upstream = SequenceUpstream(
        [Piece("par"), Piece("tial"), UpstreamError("upstream_truncated", "cut")],
        [Piece("whole"), Piece(finish_reason="stop")],
    )
    sid, outcome = run(store, flusher, upstream)
    assert outcome == "done" and upstream.opened == 2
    kinds = [t for t, _ in written(store, sid)]
    assert kinds[0] == "start" and kinds[-1] == "done"
    assert ("reset", {"attempt": 2, "reason": "upstream_truncated"}) in written(store, sid)
    assert snapshot(store, sid)["text"] == "whole"
    assert snapshot(store, sid)["attempt"] == 2


def test_a_failure_before_any_text_reruns_without_reset(store, flusher):
    upstream = SequenceUpstream([UpstreamError("upstream_unreachable", "down")], [Piece("ok"), Piece(finish_reason="stop")])
    sid, outcome = run(store, flusher, upstream)
    assert outcome == "done"
    assert [t for t, _ in written(store, sid)] == ["start", "delta", "done"]


def test_reruns_are_bounded(store, flusher):
    failing = [Piece("x"), UpstreamError("upstream_error", "bad chunk")]
    upstream = SequenceUpstream(failing, failing)
    with pytest.raises(GenerationFailed):
        run(store, flusher, upstream, sid=(sid := new_stream_id()), upstream_reset_retries=1)
    assert upstream.opened == 2
    assert written(store, sid)[-1][1]["code"] == "upstream_error"


def test_errors_that_a_rerun_cannot_fix_are_not_rerun(store, flusher):
    upstream = SequenceUpstream([UpstreamError("upstream_auth", "refused")], [Piece(finish_reason="stop")])
    with pytest.raises(GenerationFailed):
        run(store, flusher, upstream)
    assert upstream.opened == 1


def test_a_rerun_after_a_lost_worker_opens_with_reset(store, flusher):
    sid = new_stream_id()
    store.create(sid, REQUEST)
    assert store.leases.acquire(sid, 0.001, "lost-worker").claimed  # seq 1: start
    store.append(sid, "lost-worker", 2, [(EventType.DELTA, {"text": "half"})])
    assert store.leases.expired() == [sid]
    assert store.leases.reclaim(sid, "worker_lost", max_attempts=3) == ("requeue", 2)
    _, outcome = run(store, flusher, ScriptedUpstream(Piece("full"), Piece(finish_reason="stop")), sid=sid)
    assert outcome == "done"
    assert written(store, sid)[2] == ("reset", {"attempt": 2, "reason": "worker_lost"})
    assert snapshot(store, sid)["text"] == "full"
    with pytest.raises(StreamClosedError):  # the lost worker, should it wake, is fenced off
        store.append(sid, "lost-worker", 3, [(EventType.DELTA, {"text": "zombie"})])


def test_every_part_of_an_answer_is_written_in_order_and_done_reports_the_upstream(store, flusher):
    call = (EventType.TOOL_CALL, {"index": 0, "id": "c1", "tool_type": "function", "name": "f"})
    upstream = ScriptedUpstream(
        Piece(events=((EventType.REASONING, {"text": "hm"}),)),
        Piece(events=((EventType.DELTA, {"text": "Hi"}), call)),
        Piece(events=((EventType.TOOL_CALL_DELTA, {"index": 0, "arguments": "{}"}),)),
        Piece(finish_reason="tool_calls", info={"model": "m-1", "system_fingerprint": "fp"}),
        Piece(usage={"total_tokens": 2}, info={"model": "m-1", "service_tier": "default"}),
    )
    sid, outcome = run(store, flusher, upstream)
    assert outcome == "done"
    assert written(store, sid)[1:] == [
        ("reasoning", {"text": "hm"}),
        ("delta", {"text": "Hi"}),
        ("tool_call", {"index": 0, "id": "c1", "tool_type": "function", "name": "f"}),
        ("tool_call_delta", {"index": 0, "arguments": "{}"}),
        ("done", {"finish_reason": "tool_calls", "usage": {"total_tokens": 2}, "model": "m-1",
                  "system_fingerprint": "fp", "service_tier": "default"}),
    ]
    state = snapshot(store, sid)
    assert state["message"]["tool_calls"] == [{"id": "c1", "type": "function",
                                                  "function": {"name": "f", "arguments": "{}"}}]
    assert (state["upstream_model"], state["service_tier"]) == ("m-1", "default")
