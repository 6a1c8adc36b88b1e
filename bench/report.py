"""Summaries of a phase and the tables the benchmark prints."""

from __future__ import annotations

import statistics
from dataclasses import dataclass

from bench.load import StreamResult
from bench.measure import PhaseCost

# Whose CPU counts as each target's serving cost: every process that serves
# its answers, its own Redis included; never the mock's or the load generator's.
TARGET_ROLES = {
    "spool": ("gateway", "worker", "redis"),
    "direct": ("direct",),
    "resumable": ("rs-node", "rs-redis"),
    "mock": ("mock",),
}
# The table's CPU columns, in this order, when a phase metered them.
CPU_COLUMNS = ("gateway", "worker", "redis", "direct", "rs-node", "rs-redis", "mock", "loadgen")


@dataclass
class Row:
    """One phase: a target at a concurrency."""

    phase: str
    target: str
    streams: int
    exact: int
    errors: list[str]
    ttft_p50_ms: float
    ttft_p99_ms: float
    gap_p50_ms: float
    gap_p99_ms: float
    tokens: int
    wall: float
    cost: PhaseCost
    resume_p50_ms: float = 0.0
    resume_p99_ms: float = 0.0
    resumes: int = 0
    started_within: float = 0.0  # seconds from the first client's request to the last's

    @property
    def tokens_per_second(self) -> float:
        return self.tokens / self.wall if self.wall else 0.0

    def cpu(self, prefixes: tuple[str, ...]) -> float:
        return sum(c.cpu for role, c in self.cost.roles.items() if role.startswith(prefixes))

    @property
    def cpu_us_per_token(self) -> float:
        """The serving side's CPU per delivered token (see TARGET_ROLES)."""
        return 1e6 * self.cpu(TARGET_ROLES[self.target]) / self.tokens if self.tokens else 0.0


def pct(values: list[float], q: float) -> float:
    """The q-quantile (0..1) of `values`, nearest rank; 0 when empty."""
    if not values:
        return 0.0
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q * len(ordered) + 0.5) - 1))]


def summarize(phase: str, target: str, results: list[StreamResult], tokens_each: int, wall: float,
              cost: PhaseCost) -> Row:
    ttfts = [r.ttft for r in results if r.ttft is not None]
    gaps = [g for r in results for g in r.gaps]
    resumes = [t for r in results for t in r.resumes]
    exact = sum(r.exact for r in results)
    errors = sorted({r.error for r in results if r.error})
    starts = [r.started for r in results]
    return Row(
        phase, target, len(results), exact, errors,
        1000 * statistics.median(ttfts) if ttfts else 0.0, 1000 * pct(ttfts, 0.99),
        1000 * pct(gaps, 0.5), 1000 * pct(gaps, 0.99),
        exact * tokens_each, wall, cost,
        1000 * pct(resumes, 0.5), 1000 * pct(resumes, 0.99), len(resumes),
        max(starts) - min(starts) if starts else 0.0,
    )


def table(rows: list[Row]) -> str:
    """The main table: one line per phase and target."""
    # A role column is a prefix: "worker" sums every worker process.
    roles = [c for c in CPU_COLUMNS if any(k.startswith(c) for r in rows for k in r.cost.roles)]
    head = ("phase", "target", "streams", "exact", "TTFT p50", "TTFT p99", "gap p50", "gap p99",
            "tok/s", "CPU µs/tok", *("gw" if c == "gateway" else c for c in roles))
    lines = [head]
    for r in rows:
        lines.append((
            r.phase, r.target, str(r.streams), str(r.exact),
            f"{r.ttft_p50_ms:.1f}", f"{r.ttft_p99_ms:.1f}", f"{r.gap_p50_ms:.1f}", f"{r.gap_p99_ms:.1f}",
            f"{r.tokens_per_second:.0f}", f"{r.cpu_us_per_token:.0f}",
            *(f"{r.cpu((role,)):.1f}" for role in roles),
        ))
    return (_grid(lines) + f"\n(TTFT and gaps in ms; the last {len(roles)} columns are CPU seconds per process "
            "over the phase; CPU µs/tok is the serving side's: spool gateway + worker + redis, "
            "resumable rs-node + rs-redis, direct the proxy)")


def summary(rows: list[Row]) -> str:
    """Issue 16's table, one line per target: TTFT in the burst phase (and as
    a multiple of the mock's in the same phase), serving CPU per token in the
    load phase, resume latency in the resume phase."""
    def find(prefix: str, target: str) -> Row | None:
        return next((r for r in rows if r.phase.startswith(prefix) and r.target == target), None)

    targets = list(dict.fromkeys(r.target for r in rows))
    floor = find("burst-", "mock")
    lines = [("target", "burst TTFT p50 / p99 ms", "x mock's", "started within", "CPU µs/tok (load)",
              "resume p50 / p99 ms")]
    for target in targets:
        burst, load, resume = find("burst-", target), find("load-", target), find("resume-", target)
        ratio = "–"
        if burst and floor and floor.ttft_p50_ms and floor.ttft_p99_ms and target != "mock":
            ratio = f"{burst.ttft_p50_ms / floor.ttft_p50_ms:.2f} / {burst.ttft_p99_ms / floor.ttft_p99_ms:.2f}"
        lines.append((
            target,
            f"{burst.ttft_p50_ms:.0f} / {burst.ttft_p99_ms:.0f}" if burst else "–",
            ratio,
            f"{burst.started_within:.2f} s" if burst else "–",
            f"{load.cpu_us_per_token:.0f}" if load and target != "mock" else "–",
            f"{resume.resume_p50_ms:.0f} / {resume.resume_p99_ms:.0f}" if resume else "no resume",
        ))
    return _grid(lines)


def details(rows: list[Row]) -> str:
    """Memory, Redis connections and commands, resume latency, errors."""
    out = []
    for r in rows:
        if r.target != "spool":
            line = []
            if r.resumes:
                line.append(f"resume p50 {r.resume_p50_ms:.1f} ms, p99 {r.resume_p99_ms:.1f} ms over {r.resumes} resumes")
            if r.errors:
                line.append(f"errors {r.errors[:3]}")
            if line:
                out.append(f"{r.phase}/{r.target}: " + "; ".join(line))
            continue
        gw = r.cost.roles.get("gateway")
        per_stream = 1024 * (gw.rss_peak_kib - gw.rss_before_kib) / r.streams if gw and r.streams else 0
        total_cmds = sum(r.cost.commands.values())
        top = sorted(r.cost.commands.items(), key=lambda kv: -kv[1])[:6]
        tokens = max(r.tokens, 1)
        line = (f"{r.phase}/spool: gateway RSS {gw.rss_before_kib // 1024}→{gw.rss_peak_kib // 1024} MiB "
                f"(≈{per_stream / 1024:.1f} KiB per stream), Redis connections per gateway process "
                f"≤ {gw.redis_connections_peak}; Redis {total_cmds / tokens:.2f} commands/token "
                f"({', '.join(f'{k} {v / tokens:.2f}' for k, v in top)}), "
                f"Redis memory +{r.cost.redis_memory_delta / tokens:.0f} B/token")
        workers = [role for role in r.cost.roles if role.startswith("worker")]
        line += f"; {r.cost.running_peak} generations running at peak on {len(workers)} worker process(es)"
        if r.resumes:
            line += f"; resume p50 {r.resume_p50_ms:.1f} ms, p99 {r.resume_p99_ms:.1f} ms over {r.resumes} resumes"
        if r.errors:
            line += f"; errors {r.errors[:3]}"
        out.append(line)
    return "\n".join(out)


def _grid(lines: list[tuple[str, ...]]) -> str:
    widths = [max(len(line[i]) for line in lines) for i in range(len(lines[0]))]
    fmt = lambda line: "| " + " | ".join(c.ljust(w) for c, w in zip(line, widths)) + " |"  # noqa: E731
    return "\n".join([fmt(lines[0]), "|" + "|".join("-" * (w + 2) for w in widths) + "|", *map(fmt, lines[1:])])
