"""The benchmark's serving CPU per token: the same rule for every target."""

from __future__ import annotations

from bench.load import StreamResult
from bench.measure import Cost, PhaseCost
from bench.report import summarize, summary

ROLES = {"gateway": 1.0, "worker0": 2.0, "worker1": 0.5, "redis": 0.25, "direct": 4.0,
         "rs-node": 3.0, "rs-redis": 0.125, "mock": 8.0, "loadgen": 16.0}


def row(phase: str, target: str, ttfts: list[float], tokens_each: int = 100):
    results = [StreamResult(exact=True, ttft=t, started=i * 0.1) for i, t in enumerate(ttfts)]
    cost = PhaseCost(roles={role: Cost(cpu=cpu) for role, cpu in ROLES.items()})
    return summarize(phase, target, results, tokens_each, 1.0, cost)


def test_each_target_counts_its_serving_processes_and_their_redis_only():
    tokens = 2 * 100
    assert row("load-2", "spool", [0.1, 0.1]).cpu_us_per_token == 1e6 * (1.0 + 2.0 + 0.5 + 0.25) / tokens
    assert row("load-2", "resumable", [0.1, 0.1]).cpu_us_per_token == 1e6 * (3.0 + 0.125) / tokens
    assert row("load-2", "direct", [0.1, 0.1]).cpu_us_per_token == 1e6 * 4.0 / tokens


def test_the_summary_puts_each_burst_against_the_mocks():
    rows = [row("burst-3", "mock", [0.1, 0.1, 0.2]), row("burst-3", "resumable", [0.15, 0.15, 0.6]),
            row("load-3", "resumable", [0.1, 0.1, 0.1])]
    lines = summary(rows).splitlines()
    peer = next(line for line in lines if line.startswith("| resumable "))
    assert "| 150 / 600 " in peer and "| 1.50 / 3.00 " in peer and "| 0.20 s " in peer
    assert f"| {1e6 * 3.125 / 300:.0f} " in peer
    assert "no resume" in peer
