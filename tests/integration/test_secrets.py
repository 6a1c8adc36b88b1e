"""The upstream key never leaves the worker: not in a response, an event, a
log line or the job record, even when the upstream echoes it back."""

from __future__ import annotations

import pytest
import redis
import requests

from tests.client import chat, post_stream, read

pytestmark = pytest.mark.integration

UPSTREAM_KEY = "sk-proj-SPOOLCANARY-7f3e9a1c5b"
GATEWAY_KEY = "gw-key-CANARY-4d2b8e6f0a-0123456789ab"
AUTH = {"Authorization": f"Bearer {GATEWAY_KEY}"}


def test_upstream_key_is_absent_from_responses_logs_and_redis(stack_factory):
    stack = stack_factory(env={"OPENAI_API_KEY": UPSTREAM_KEY, "SPOOL_API_KEYS": GATEWAY_KEY,
                               "SPOOL_SECRET_KEY": "test-secret-0123456789-abcdefghijklm"})
    seen: list[str] = []
    codes = []
    for model in ("mock-auth", "mock-error"):
        received = read(post_stream(stack.base_url, chat("leak?", model=model), headers=AUTH))
        codes.append(received.terminal["code"])
        seen.append(repr(received.events))
        snapshot = requests.get(f"{stack.base_url}/v1/streams/{received.stream_id}", headers=AUTH, timeout=10)
        seen.append(snapshot.text)
        # The stream's job record (RQ keeps the failure's traceback in Redis).
        client = redis.Redis.from_url(stack.redis_url)
        try:
            seen.append(repr(client.hgetall(f"rq:job:{received.stream_id}")))
        finally:
            client.close()
    assert codes == ["upstream_auth", "upstream_error"]
    # The mock really did echo the key, so the test would catch a leak.
    assert any(r["model"] == "mock-auth" for r in stack.mock_stats())
    for process in stack.processes:
        if process.name != "mock-upstream":
            seen.append(process.log_path.read_text(errors="replace"))
    everything = "\n".join(seen)
    assert "the model refused the API key (HTTP 401)" in everything
    assert UPSTREAM_KEY not in everything
    assert "SPOOLCANARY" not in everything
    assert GATEWAY_KEY not in everything
