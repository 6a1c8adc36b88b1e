"""Fixtures shared by every tier.

Tests that need a real Redis use REDIS_URL (default 127.0.0.1:6379). When it
does not answer they are skipped, unless SPOOL_TEST_STRICT=1 (set by
`make test` and CI), where a missing service is a failure.

Test gateways run without API keys unless a test gives them some, and name
models other than the default (the mock's fault models); a gateway refuses
open mode unless SPOOL_ALLOW_OPEN=1 says so, and other models unless
SPOOL_MODELS lists them or is `*` (spool/security_config.py). Both opt-ins
are set here, once, for every app built in the test process (create_app reads
the environment) and every process started from it (tests/stack.py sets them
too). Tests of the refusals override `allow_open` / `models`, or unset them.
"""

from __future__ import annotations

import os
import uuid

import pytest
import redis

from tests.stack import Stack, start_stack

os.environ.setdefault("SPOOL_ALLOW_OPEN", "1")
os.environ.setdefault("SPOOL_MODELS", "*")

REDIS_URL = os.environ.get("SPOOL_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
STRICT = os.environ.get("SPOOL_TEST_STRICT") == "1"


def require(ok: bool, message: str) -> None:
    """Fail (SPOOL_TEST_STRICT, as in CI) or skip when a prerequisite is missing."""
    if not ok:
        if STRICT:
            pytest.fail(message)
        pytest.skip(message)


@pytest.fixture(scope="session")
def redis_url() -> str:
    """The real Redis for the integration tiers."""
    client = redis.Redis.from_url(REDIS_URL, socket_connect_timeout=2)
    try:
        client.ping()
    except redis.RedisError as exc:
        require(False, f"no Redis at {REDIS_URL}: {exc}")
    finally:
        client.close()
    return REDIS_URL


@pytest.fixture(scope="session")
def redis_cluster():
    """A real 3-master Redis Cluster (bench/redis_topologies.py), one per session."""
    from bench.redis_topologies import RedisCluster3

    cluster = RedisCluster3().start()
    yield cluster
    cluster.stop()


@pytest.fixture
def prefix() -> str:
    """A key prefix no other test uses."""
    return f"t{uuid.uuid4().hex[:12]}"


@pytest.fixture
def stack_factory(redis_url, tmp_path):
    """Start real stacks (see tests/stack.py), on the shared Redis or on
    `redis=<url>`; all are stopped after the test."""
    stacks: list[Stack] = []

    def factory(redis: str | None = None, **kwargs) -> Stack:
        kwargs.setdefault("log_dir", tmp_path / f"stack-{len(stacks)}")
        kwargs["log_dir"].mkdir()
        stack = start_stack(redis or redis_url, **kwargs)
        stacks.append(stack)
        return stack

    yield factory
    for stack in stacks:
        stack.stop()


@pytest.fixture(scope="module")
def stack(redis_url, tmp_path_factory):
    """One gateway, one worker, the mock upstream at 200 tokens/s, shared by a
    module's tests (each works on streams of its own)."""
    stack = start_stack(
        redis_url,
        mock_args=["--ttft-ms", "20", "--tokens-per-second", "200", "--tokens", "40"],
        log_dir=tmp_path_factory.mktemp("stack"),
    )
    yield stack
    stack.stop()
