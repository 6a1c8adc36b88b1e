"""Chaos tier: real processes, a private redis-server, injected faults.

Each scenario adds a row to a summary table (faults injected, streams
affected, lost, duplicated, hung), printed at the end of the run and written
to test-artifacts/chaos-summary.md.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.chaos.harness import Outcome
from tests.stack import ROOT

ROWS: list[Row] = []


@dataclass
class Row:
    scenario: str
    faults: int
    streams: int
    affected: int
    lost: int
    duplicated: int
    hung: int
    seconds: float


def record(scenario: str, faults: int, outcomes: list[Outcome], lost: int, seconds: float) -> Row:
    """Add a scenario's figures to the summary."""
    row = Row(
        scenario,
        faults,
        streams=len(outcomes),
        affected=sum(1 for o in outcomes if o.drops or o.reconnects or o.resets),
        lost=lost,
        duplicated=sum(o.duplicated for o in outcomes),
        hung=sum(1 for o in outcomes if o.hung),
        seconds=round(seconds, 1),
    )
    ROWS.append(row)
    return row


def summary() -> str:
    head = "| scenario | faults injected | streams | affected | lost | duplicated | hung | seconds |"
    lines = [head, "|---|---|---|---|---|---|---|---|"]
    lines += [
        f"| {r.scenario} | {r.faults} | {r.streams} | {r.affected} | {r.lost} | {r.duplicated} | {r.hung} | {r.seconds} |"
        for r in ROWS
    ]
    return "\n".join(lines)


def pytest_terminal_summary(terminalreporter):
    if not ROWS:
        return
    table = summary()
    terminalreporter.write_sep("=", "chaos summary")
    terminalreporter.write_line(table)
    out = ROOT / "test-artifacts"
    out.mkdir(exist_ok=True)
    (out / "chaos-summary.md").write_text(table + "\n")


@pytest.fixture
def private_redis(tmp_path: Path):
    """A redis-server of this test's own, append-only file on."""
    from tests.chaos.redis_server import RedisServer

    server = RedisServer(tmp_path / "redis")
    server.directory.mkdir()
    server.start()
    yield server
    server.stop()
