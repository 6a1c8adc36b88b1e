"""The benchmark's scenarios: `standard` (make bench) and `scale` (the knee)."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass

from bench import resumable_peer
from bench import stack as bench_stack
from bench.load import run_streams
from bench.measure import Meter
from bench.procs import Fleet
from bench.report import Row, summarize


@dataclass
class Options:
    """Command-line knobs (see `python -m bench --help`)."""

    clients: int = 200
    ttft_rounds: int = 20
    levels: tuple[int, ...] = (250, 500, 1000, 2000)
    workers: int = 1
    worker_concurrency: int = 1000
    gateway_workers: int = 1
    coalesce_ms: float | None = None
    ramp: float = 2.0
    burst: float = 0.4  # seconds over which the burst phase starts its clients
    targets: tuple[str, ...] = ("mock", "resumable", "direct", "spool")
    streams_cluster: bool = False  # the streams on a 3-master Redis Cluster (bench/cluster.py)


# Metering goes on this long after a phase's last answer, for every target
# alike, so that work done after the clients saw the end (closing connections,
# the end-of-answer writes) counts in the phase it belongs to.
SETTLE_SECONDS = 0.25
SETTLE_LIMIT = 30.0


def phase(s: bench_stack.BenchStack, name: str, target: str, concurrency: int, tokens: int, **kwargs) -> Row:
    """Run one target at one concurrency and measure it."""
    with Meter(s.procs, s.redis, s.redis_port, s.started_key) as meter:
        started = time.perf_counter()
        results = asyncio.run(run_streams(s.targets[target], concurrency, tokens=tokens,
                                          label=f"{name}-{target}-{concurrency}", **kwargs))
        wall = time.perf_counter() - started
        settle(s, target)
    return summarize(name, target, results, tokens, wall, meter.cost)


def settle(s: bench_stack.BenchStack, target: str) -> None:
    """Wait until the target has finished the phase's answers: spool's worker
    ends a job after its client read `done` (RQ's registry empties then)."""
    deadline = time.monotonic() + SETTLE_LIMIT
    while target == "spool" and s.redis.zcard(s.started_key) and time.monotonic() < deadline:
        time.sleep(0.02)
    time.sleep(SETTLE_SECONDS)


def runnable(targets: tuple[str, ...], log=print) -> tuple[str, ...]:
    """`targets` without the resumable-stream peer when it cannot run here
    (said in one line); an unknown name is an error."""
    unknown = set(targets) - {"mock", "direct", "spool", "resumable"}
    if unknown:
        raise SystemExit(f"unknown target(s): {', '.join(sorted(unknown))} (mock, resumable, direct, spool)")
    if "resumable" in targets and (why := resumable_peer.unavailable()):
        log(why)
        return tuple(t for t in targets if t != "resumable")
    return targets


def standard(opts: Options, log=print) -> list[Row]:
    """The standard answer (200 tokens, TTFT 100 ms, 50 tokens/s): TTFT with one
    client; a burst of `clients` clients started within `burst` seconds; a load
    phase with `clients` clients started over `ramp`; and resumes with random
    drops (the targets that resume: spool and resumable)."""
    rows = []
    targets = runnable(opts.targets, log)
    with Fleet() as fleet:
        s = bench_stack.start(fleet, ttft_ms=100, tokens_per_second=50, tokens=200, workers=opts.workers,
                              worker_concurrency=opts.worker_concurrency, gateway_workers=opts.gateway_workers,
                              coalesce_ms=opts.coalesce_ms, peer="resumable" in targets,
                              streams_cluster=opts.streams_cluster)
        log(f"stack up (logs in {fleet.log_dir})")
        for target in targets:
            # 20-token answers: TTFT is the same, and the phase stays short.
            rows.append(phase(s, "ttft-1", target, 1, 20, rounds=opts.ttft_rounds, max_tokens=20))
            log(f"ttft-1 {target}: p50 {rows[-1].ttft_p50_ms:.1f} ms")
        for target in targets:
            rows.append(phase(s, f"burst-{opts.clients}", target, opts.clients, 200, ramp=opts.burst))
            r = rows[-1]
            log(f"burst-{opts.clients} {target}: {r.exact}/{r.streams} exact, TTFT p50 {r.ttft_p50_ms:.0f} ms, "
                f"p99 {r.ttft_p99_ms:.0f} ms, started within {r.started_within:.2f} s")
        for target in targets:
            rows.append(phase(s, f"load-{opts.clients}", target, opts.clients, 200, ramp=opts.ramp))
            log(f"load-{opts.clients} {target}: {rows[-1].exact}/{rows[-1].streams} exact")
        for target in (t for t in targets if t in ("spool", "resumable")):
            rows.append(phase(s, f"resume-{opts.clients}", target, opts.clients, 200, ramp=opts.ramp, drops=2))
            log(f"resume-{opts.clients} {target}: p99 {rows[-1].resume_p99_ms:.1f} ms")
    return rows


def scale(opts: Options, tokens: int = 60, log=print) -> list[Row]:
    """Answers at 10 tokens/s (TTFT 100 ms), each target at each level of `levels`."""
    rows = []
    targets = runnable(opts.targets, log)
    with Fleet() as fleet:
        s = bench_stack.start(fleet, ttft_ms=100, tokens_per_second=10, tokens=tokens, workers=opts.workers,
                              worker_concurrency=opts.worker_concurrency, gateway_workers=opts.gateway_workers,
                              coalesce_ms=opts.coalesce_ms, peer="resumable" in targets,
                              streams_cluster=opts.streams_cluster)
        log(f"stack up (logs in {fleet.log_dir})")
        for level in opts.levels:
            for target in targets:
                rows.append(phase(s, f"scale-{level}", target, level, tokens, ramp=opts.ramp))
                r = rows[-1]
                log(f"scale-{level} {target}: {r.exact}/{r.streams} exact, TTFT p50 {r.ttft_p50_ms:.0f} ms")
    return rows


def knees(rows: list[Row]) -> str:
    """The highest level at which each target had every text exact and a TTFT
    median within 2x of the mock's own at that level."""
    levels = sorted({r.streams for r in rows if r.phase.startswith("scale-")})
    out = []
    for target in ("spool", "resumable", "direct"):
        if not any(r.target == target for r in rows):
            continue
        best = None
        for level in levels:
            mine = next((r for r in rows if r.streams == level and r.target == target), None)
            base = next((r for r in rows if r.streams == level and r.target == "mock"), None)
            if mine and base and mine.exact == mine.streams and mine.ttft_p50_ms <= 2 * base.ttft_p50_ms:
                best = level
            else:
                break
        out.append(f"knee {target}: {best if best is not None else f'below {levels[0]}'} concurrent streams")
    return "; ".join(out)
