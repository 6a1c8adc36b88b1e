"""The benchmark's load generator, run for a few streams: correctness only
(every text exact, no errors), never timings."""

from __future__ import annotations

import asyncio

import pytest

from bench.load import Target, run_streams
from bench.measure import PhaseCost, redis_connections
from bench.procs import Fleet, children, free_port
from bench.report import summarize, summary

pytestmark = pytest.mark.integration

TOKENS = 40  # the `stack` fixture's mock answers 40 tokens


@pytest.fixture(scope="module")
def direct_url(stack):
    """The direct Flask proxy of bench/direct_proxy.py in front of the stack's mock."""
    with Fleet() as fleet:
        port = free_port()
        fleet.gunicorn("direct", "bench.direct_proxy:create_app()", port, 1,
                       {"OPENAI_BASE_URL": stack.mock_url, "OPENAI_API_KEY": "mock"})
        yield f"http://127.0.0.1:{port}"


@pytest.mark.parametrize("kind", ["spool", "direct", "mock"])
def test_every_target_delivers_exact_texts(stack, direct_url, kind):
    url = {"spool": stack.base_url, "direct": direct_url, "mock": stack.mock_url}[kind]
    results = asyncio.run(run_streams(Target(kind, url), 5, tokens=TOKENS, label=f"smoke-{kind}", rounds=2))
    assert [r.error for r in results] == [None] * 10
    assert all(r.exact for r in results)
    assert all(r.ttft is not None and r.ttft <= r.total for r in results)


def test_resumed_streams_are_exact_and_time_each_resume(stack):
    results = asyncio.run(run_streams(Target("spool", stack.base_url), 4, tokens=TOKENS, label="smoke-resume",
                                      drops=2, drop_within=2))
    assert [r.error for r in results] == [None] * 4
    assert all(r.exact for r in results)
    # The first drop comes within 2 events, so every stream resumed at least
    # once (a second drop may find the answer already ended).
    assert all(1 <= len(r.resumes) <= 2 and all(t > 0 for t in r.resumes) for r in results), [r.resumes for r in results]


def test_the_gateways_redis_connections_are_counted(stack):
    asyncio.run(run_streams(Target("spool", stack.base_url), 2, tokens=TOKENS, label="smoke-conns"))
    port = int(stack.redis_url.rsplit(":", 1)[1].split("/")[0])
    master = next(p for p in stack.processes if p.name.startswith("gateway")).popen.pid  # gunicorn's
    # The pooled connections the streams used stay open; a handful, not one per client.
    assert 1 <= redis_connections(children(master), port) <= 16


def test_a_burst_is_reported_against_the_mocks_ttft(stack):
    rows = []
    for kind, url in (("mock", stack.mock_url), ("spool", stack.base_url)):
        results = asyncio.run(run_streams(Target(kind, url), 10, tokens=TOKENS, label=f"smoke-burst-{kind}",
                                          ramp=0.4))
        assert [r.error for r in results] == [None] * 10
        assert all(r.exact for r in results)
        rows.append(summarize("burst-10", kind, results, TOKENS, 1.0, PhaseCost()))
    mock, spool = rows
    # The last client is scheduled 0.36 s after the first: the spread is measured, not assumed.
    assert spool.started_within >= 0.3
    line = next(line for line in summary(rows).splitlines() if line.startswith("| spool "))
    ratios = f"{spool.ttft_p50_ms / mock.ttft_p50_ms:.2f} / {spool.ttft_p99_ms / mock.ttft_p99_ms:.2f}"
    assert f"| {ratios} " in line, line
