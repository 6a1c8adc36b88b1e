"""The whole pipeline with real processes: gunicorn gateway, spool worker,
mock upstream, real Redis."""

from __future__ import annotations

import concurrent.futures
import json

import pytest
import redis
import requests
from rq.registry import FailedJobRegistry, FinishedJobRegistry

from mock_upstream import expected_text
from tests.client import answer_text, chat, get_events, post_stream, read
from tests.stack import wait_until

TOKENS = 40  # the `stack` fixture's answer length


def assert_complete(received, prompt: str, tokens: int = TOKENS) -> None:
    assert received.seqs == list(range(1, len(received.events) + 1))
    assert received.events[0]["type"] == "start"
    assert received.terminal == {**received.terminal, "type": "done", "finish_reason": "stop"}
    assert received.text == expected_text(prompt, tokens)


def test_ndjson_stream_reassembles_to_the_upstream_text(stack):
    response = post_stream(stack.base_url, chat("ndjson please"))
    assert response.headers["Content-Type"].startswith("application/x-ndjson")
    assert response.headers["Cache-Control"] == "no-cache"
    assert response.headers["X-Accel-Buffering"] == "no"
    received = read(response)
    assert_complete(received, "ndjson please")
    start = received.events[0]
    assert start["id"] == received.stream_id and start["model"] == "mock"
    assert received.terminal["usage"]["completion_tokens"] == TOKENS


def test_answers_in_a_row_reuse_the_upstream_connection(stack):
    # Each answer's body is read to its end, so its HTTP connection goes back
    # to the SDK's pool: a new one per answer would cost a connect (on the real
    # API, a TLS handshake) before every first token.
    for i in range(3):
        assert_complete(read(post_stream(stack.base_url, chat(f"reuse {i}"))), f"reuse {i}")
    ports = {r["client_port"] for r in stack.mock_stats() if r["prompt"].startswith("reuse ")}
    assert len(ports) == 1


def test_sse_stream_reassembles_and_ids_are_seqs(stack):
    response = post_stream(stack.base_url, chat("sse please"), sse=True)
    assert response.headers["Content-Type"].startswith("text/event-stream")
    received = read(response, sse=True)
    assert_complete(received, "sse please")
    assert received.sse_ids == [str(s) for s in received.seqs]


def test_accepted_then_followed(stack):
    response = requests.post(f"{stack.base_url}/v1/streams", json=chat("later"), timeout=10)
    assert response.status_code == 202
    body = response.json()
    assert body["status"] == "queued" and response.headers["X-Stream-Id"] == body["id"]
    received = read(requests.get(stack.base_url + body["events_url"], stream=True, timeout=30))
    assert_complete(received, "later")
    snapshot = requests.get(stack.base_url + body["url"], timeout=10).json()
    assert snapshot["status"] == "done"
    assert snapshot["text"] == expected_text("later", TOKENS)
    assert snapshot["last_seq"] == received.seqs[-1]
    assert snapshot["finish_reason"] == "stop" and snapshot["usage"]["completion_tokens"] == TOKENS


@pytest.mark.parametrize("how", ["after", "last_event_id", "sse_last_event_id"])
@pytest.mark.parametrize("k", [1, 2, 7])
def test_resume_after_a_drop_gets_exactly_the_rest(stack, how, k):
    prompt = f"resume {how} {k}"
    first = read(post_stream(stack.base_url, chat(prompt)), stop_after=k)
    assert first.seqs == list(range(1, k + 1))
    if how == "after":
        rest = read(get_events(stack.base_url, first.stream_id, after=k))
    else:
        sse = how.startswith("sse")
        rest = read(get_events(stack.base_url, first.stream_id, last_event_id=k, sse=sse), sse=sse)
    events = first.events + rest.events
    assert [e["seq"] for e in events] == list(range(1, len(events) + 1))
    assert answer_text(events) == expected_text(prompt, TOKENS)
    assert events[-1]["type"] == "done"


def test_twenty_concurrent_streams_through_one_worker(stack):
    prompts = [f"concurrent {i}" for i in range(20)]
    with concurrent.futures.ThreadPoolExecutor(len(prompts)) as pool:
        results = list(pool.map(lambda p: read(post_stream(stack.base_url, chat(p))), prompts))
    for prompt, received in zip(prompts, results):
        assert_complete(received, prompt)
    assert len(stack.worker_procs) == 1


def test_two_readers_receive_identical_events(stack):
    created = requests.post(f"{stack.base_url}/v1/streams", json=chat("two readers"), timeout=10).json()
    with concurrent.futures.ThreadPoolExecutor(2) as pool:
        a, b = pool.map(lambda _: read(get_events(stack.base_url, created["id"])), range(2))
    assert a.events == b.events
    assert_complete(a, "two readers")


def test_a_finished_stream_is_in_rqs_finished_registry(stack):
    received = read(post_stream(stack.base_url, chat("registry")))
    client = redis.Redis.from_url(stack.redis_url)
    registry = FinishedJobRegistry(stack.prefix, connection=client)
    # RQ's bookkeeping follows the terminal event the client already has.
    wait_until(lambda: received.stream_id in registry.get_job_ids(), 5, "the job in FinishedJobRegistry")


def test_unknown_stream_is_404_json(stack):
    for path in ("/v1/streams/AAAAAAAAAAAAAAAAAAAAAA", "/v1/streams/AAAAAAAAAAAAAAAAAAAAAA/events", "/v1/streams/bad"):
        response = requests.get(stack.base_url + path, timeout=5)
        assert response.status_code == 404
        assert response.json()["error"]["code"] == "not_found"


@pytest.fixture
def slow_stack(stack_factory):
    """Long, slow answers, so there is time to cancel and heartbeats show."""
    return stack_factory(
        mock_args=["--ttft-ms", "20", "--tokens-per-second", "20", "--tokens", "400"],
        env={"SPOOL_HEARTBEAT_INTERVAL": "0.2"},
    )


def test_cancel_stops_the_upstream_call(slow_stack):
    response = post_stream(slow_stack.base_url, chat("cancel me"))
    first = read(response, stop_after=3)
    cancelled = requests.post(f"{slow_stack.base_url}/v1/streams/{first.stream_id}/cancel", timeout=10)
    assert cancelled.status_code == 200
    assert cancelled.json() == {"id": first.stream_id, "status": "cancelled"}
    rest = read(get_events(slow_stack.base_url, first.stream_id, after=3))
    assert rest.terminal["type"] == "cancelled"

    def upstream_call() -> dict:
        [call] = [r for r in slow_stack.mock_stats() if r["prompt"] == "cancel me"]
        return call

    # The mock notices the closed connection at its next write.
    wait_until(lambda: upstream_call()["aborted"], 5, "the mock to see the upstream call closed")
    assert upstream_call()["tokens_sent"] < 400
    # Idempotent: a second cancel reports the same end.
    again = requests.post(f"{slow_stack.base_url}/v1/streams/{first.stream_id}/cancel", timeout=10)
    assert again.json() == {"id": first.stream_id, "status": "cancelled"}
    snapshot = requests.get(f"{slow_stack.base_url}/v1/streams/{first.stream_id}", timeout=5).json()
    assert snapshot["status"] == "cancelled"


def test_quiet_stream_gets_heartbeats(stack_factory):
    quiet = stack_factory(mock_args=["--ttft-ms", "1500", "--tokens", "3"], env={"SPOOL_HEARTBEAT_INTERVAL": "0.2"})
    received = read(post_stream(quiet.base_url, chat("quiet")))
    assert received.heartbeats >= 3
    assert received.terminal["type"] == "done"


@pytest.mark.parametrize(
    ("model", "code"),
    [("mock-truncate", "upstream_truncated"), ("mock-error", "upstream_error"), ("mock-corrupt", "upstream_error"),
     ("mock-429", "upstream_rate_limited")],
)
def test_failing_upstreams_end_in_error(stack, model, code):
    received = read(post_stream(stack.base_url, chat(f"fail {model}", model=model)))
    assert received.terminal["type"] == "error"
    assert received.terminal["code"] == code
    assert received.seqs == list(range(1, len(received.events) + 1))
    registry = FailedJobRegistry(stack.prefix, connection=redis.Redis.from_url(stack.redis_url))
    wait_until(lambda: received.stream_id in registry.get_job_ids(), 5, "the job in FailedJobRegistry")


def test_stalled_upstream_ends_in_timeout_error(stack_factory):
    stalled = stack_factory(mock_args=["--ttft-ms", "10", "--tokens", "10"], env={"SPOOL_UPSTREAM_TIMEOUT": "1"})
    received = read(post_stream(stalled.base_url, chat("stall", model="mock-stall")))
    assert received.terminal["code"] == "upstream_timeout"


def test_worker_sigterm_finishes_running_generations(stack_factory):
    slow = stack_factory(mock_args=["--ttft-ms", "10", "--tokens-per-second", "40", "--tokens", "60"])
    response = post_stream(slow.base_url, chat("graceful"))
    first = read(response, stop_after=2)
    [worker] = slow.worker_procs
    worker.terminate()
    rest = read(get_events(slow.base_url, first.stream_id, after=2))
    assert first.text + rest.text == expected_text("graceful", 60)
    assert rest.terminal["type"] == "done"
    assert worker.wait(timeout=20) == 0
    # A stopped worker takes no new job: this one stays queued.
    queued = requests.post(f"{slow.base_url}/v1/streams", json=chat("after stop"), timeout=5).json()
    assert requests.get(slow.base_url + queued["url"], timeout=5).json()["status"] == "queued"
