"""Keys, ownership, read tokens and limits on a real stack (gunicorn + gevent
gateways sharing one Redis)."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import pytest
import requests

from tests.client import chat, read

pytestmark = pytest.mark.integration

ALICE, BOB = "alice-integration-key-01-abcdefghijk", "bob-integration-key-02-abcdefghijkl"
LIMIT = 3


def auth(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


@pytest.fixture(scope="module")
def secured(redis_url, tmp_path_factory):
    from tests.stack import start_stack

    # Slow answers (4 s) keep streams live while the limits are probed; two
    # gateways show the limits and tokens hold across processes.
    stack = start_stack(redis_url, gateways=2, env={
        "SPOOL_API_KEYS": f"{ALICE},{BOB}", "SPOOL_SECRET_KEY": "access-secret-0123456789-abcdefghij",
        "SPOOL_MAX_CONCURRENT_STREAMS": str(LIMIT)},
        mock_args=["--ttft-ms", "20", "--tokens-per-second", "10", "--tokens", "40"],
        log_dir=tmp_path_factory.mktemp("secured"))
    yield stack
    stack.stop()


def create(url: str, key: str, prompt: str) -> requests.Response:
    return requests.post(f"{url}/v1/streams", json=chat(prompt), headers=auth(key), timeout=30)


def test_concurrent_limit_is_atomic_across_gateways_and_freed_by_cancel(secured):
    urls = secured.gateway_urls
    with ThreadPoolExecutor(8) as pool:
        responses = list(pool.map(lambda i: create(urls[i % 2], ALICE, f"race {i}"), range(8)))
    statuses = sorted(r.status_code for r in responses)
    assert statuses == [202] * LIMIT + [429] * (8 - LIMIT)
    refused = next(r for r in responses if r.status_code == 429)
    assert refused.json()["error"]["code"] == "too_many_streams" and int(refused.headers["Retry-After"]) >= 1
    # Bob is unaffected; cancelling one of Alice's streams frees one slot.
    bob = create(urls[0], BOB, "bob")
    assert bob.status_code == 202
    admitted = [r.json() for r in responses if r.status_code == 202]
    cancel = requests.post(urls[1] + admitted[0]["cancel_url"], headers=auth(ALICE), timeout=30)
    assert cancel.json()["status"] == "cancelled"
    assert create(urls[0], ALICE, "after cancel").status_code == 202
    assert create(urls[1], ALICE, "over again").status_code == 429
    for body in admitted[1:] + [bob.json()]:
        owner = BOB if body["id"] == bob.json()["id"] else ALICE
        requests.post(urls[0] + body["cancel_url"], headers=auth(owner), timeout=30)


def test_other_key_gets_404_and_token_streams_sse_on_another_gateway(secured):
    first, second = secured.gateway_urls
    body = create(first, BOB, "token reader").json()
    try:
        assert requests.get(second + body["url"], headers=auth(ALICE), timeout=10).status_code == 404
        cancel = requests.post(second + body["cancel_url"], headers=auth(ALICE), timeout=10)
        assert cancel.status_code == 404
        assert requests.get(second + body["url"], timeout=10).status_code == 401
        # As a browser's EventSource would: no headers, the token in the URL.
        response = requests.get(f"{second}{body['events_url']}?format=sse&token={body['read_token']}",
                                stream=True, timeout=30)
        received = read(response, stop_after=2, sse=True)
        assert [e["type"] for e in received.events] == ["start", "delta"]
        with_token_cancel = requests.post(f"{second}{body['cancel_url']}?token={body['read_token']}", timeout=10)
        assert with_token_cancel.status_code == 401
    finally:
        requests.post(first + body["cancel_url"], headers=auth(BOB), timeout=30)
