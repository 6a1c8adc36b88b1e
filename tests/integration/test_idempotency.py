"""One Idempotency-Key, fifty concurrent POSTs, a real gateway: exactly one
outcome shared by all (issue 19, item 2) — one stream that every reply names
and that exists, or the same refusal for all; never a 500 or an id that 404s."""

from __future__ import annotations

import json
import uuid
from concurrent.futures import ThreadPoolExecutor

import pytest
import redis
import requests

from tests.client import chat, read

CONCURRENT = 50
# Bounds a whole reply, a followed stream included: the mock answers in well
# under a second, so only a reply that never ends comes near it.
REPLY_SECONDS = 60


def post_all(base_url: str, key: str, body: dict, *, live: bool = True) -> list[dict]:
    """POST `body` with `key` CONCURRENT times at once; with `live`, half ask
    for the live NDJSON stream. Returns what each reply said (a live stream
    read to its end)."""

    def one(i: int) -> dict:
        accept = "application/x-ndjson" if live and i % 2 else "application/json"
        response = requests.post(f"{base_url}/v1/streams", json=body, stream=True, timeout=30,
                                 headers={"Idempotency-Key": key, "Accept": accept})
        reply = {"status": response.status_code, "replayed": response.headers.get("Idempotent-Replayed"),
                 "id": response.headers.get("X-Stream-Id"), "retry_after": response.headers.get("Retry-After")}
        if response.status_code == 200:
            received = read(response)
            reply["terminal"] = received.terminal and received.terminal["type"]
        else:
            reply["body"] = response.content
            if response.status_code == 202:
                reply["id"] = json.loads(response.content)["id"]
        return reply

    with ThreadPoolExecutor(CONCURRENT) as pool:
        futures = [pool.submit(one, i) for i in range(CONCURRENT)]
        return [f.result(timeout=REPLY_SECONDS) for f in futures]


def stream_ids(stack) -> set[str]:
    client = redis.Redis.from_url(stack.redis_url)
    try:
        return {k.decode().split("{")[1].split("}")[0] for k in client.scan_iter(f"{stack.prefix}:{{*}}:meta")}
    finally:
        client.close()


def assert_one_shared_stream(stack, replies: list[dict], *, ends: bool) -> str:
    statuses = sorted({r["status"] for r in replies})
    assert statuses == ([200, 202]), replies
    ids = {r["id"] for r in replies}
    assert len(ids) == 1, replies
    (sid,) = ids
    assert sum(r["replayed"] is None for r in replies) == 1, "exactly one reply created it"
    assert requests.get(f"{stack.base_url}/v1/streams/{sid}", timeout=10).status_code == 200
    if ends:
        assert {r["terminal"] for r in replies if r["status"] == 200} == {"done"}
    return sid


def test_one_key_fifty_posts_one_stream(stack_factory):
    stack = stack_factory(mock_args=["--ttft-ms", "20", "--tokens", "5"])
    before = stream_ids(stack)
    sid = assert_one_shared_stream(stack, post_all(stack.base_url, uuid.uuid4().hex, chat("one")), ends=True)
    assert stream_ids(stack) - before == {sid}
    events = read(requests.get(f"{stack.base_url}/v1/streams/{sid}/events", stream=True, timeout=30))
    assert events.terminal["type"] == "done"


@pytest.fixture
def limited_stack(stack_factory):
    """At most 3 live streams per client, and no worker: queued streams stay
    live, so the slots stay as the test fills them."""
    return stack_factory(workers=0, env={"SPOOL_MAX_CONCURRENT_STREAMS": "3"})


def test_one_key_with_a_slot_free_makes_one_stream(limited_stack):
    for i in range(2):
        assert requests.post(f"{limited_stack.base_url}/v1/streams", json=chat(f"fill {i}"), timeout=10).status_code == 202
    before = stream_ids(limited_stack)
    # No worker: a live reply would be followed until the gateway stops, so none is asked for.
    replies = post_all(limited_stack.base_url, uuid.uuid4().hex, chat("the third"), live=False)
    assert {r["status"] for r in replies} == {202}
    ids = {r["id"] for r in replies}
    assert len(ids) == 1 and stream_ids(limited_stack) - before == ids, replies


def test_one_key_with_the_slots_full_is_one_refusal_for_all(limited_stack):
    for i in range(3):
        assert requests.post(f"{limited_stack.base_url}/v1/streams", json=chat(f"fill {i}"), timeout=10).status_code == 202
    before = stream_ids(limited_stack)
    replies = post_all(limited_stack.base_url, uuid.uuid4().hex, chat("a fourth"))
    assert {(r["status"], r["body"], r["retry_after"]) for r in replies} == {
        (429, b'{"error":{"code":"too_many_streams","message":"at most 3 live streams at a time"}}\n', "5")
    }, replies
    assert stream_ids(limited_stack) == before
