"""What a benchmark phase cost each process: CPU seconds, peak RSS, Redis
connections, Redis commands and memory."""

from __future__ import annotations

import os
import threading
from dataclasses import dataclass, field
from pathlib import Path

import redis

from bench.procs import Proc, cpu_seconds, rss_kib

SAMPLE_SECONDS = 0.25


def redis_connections(pids: list[int], redis_port: int) -> int:
    """How many TCP connections the processes hold to Redis on `redis_port`."""
    inodes = set()
    for pid in pids:
        fd_dir = Path(f"/proc/{pid}/fd")
        for fd in fd_dir.iterdir():
            try:
                target = os.readlink(fd)
            except OSError:
                continue
            if target.startswith("socket:["):
                inodes.add(target[8:-1])
    tables = [Path(table).read_text() for table in ("/proc/net/tcp", "/proc/net/tcp6")]
    return len(established_to(redis_port, tables) & inodes)


def established_to(port: int, tables: list[str]) -> set[str]:
    """The inodes of the ESTABLISHED sockets whose remote port is `port`, in
    /proc/net/tcp-format tables.

    A set, not a count of lines: the kernel writes the table a page at a time
    and, while connections open and close, lists some sockets twice (hundreds
    of duplicates per read at 2,000 streams). Counting lines made the
    gateway's connections read as up to 23 where Redis saw 9.
    """
    found = set()
    for table in tables:
        for line in table.splitlines()[1:]:
            cols = line.split()
            if cols[3] == "01" and int(cols[2].rsplit(":", 1)[1], 16) == port:  # 01: ESTABLISHED
                found.add(cols[9])
    return found


@dataclass
class Cost:
    """One role's cost over a phase."""

    cpu: float = 0.0
    rss_before_kib: int = 0
    rss_peak_kib: int = 0
    redis_connections_peak: int = 0


@dataclass
class PhaseCost:
    """Every role's cost, Redis command counts and memory over a phase."""

    roles: dict[str, Cost] = field(default_factory=dict)
    commands: dict[str, int] = field(default_factory=dict)
    redis_memory_delta: int = 0
    running_peak: int = 0  # generations running at once, all workers together


class Meter:
    """Measures a phase: `with Meter(procs, redis_client, port) as meter: ...`."""

    def __init__(self, procs: list[Proc], client: redis.Redis, redis_port: int, started_key: str = "") -> None:
        self._procs = procs
        self._started_key = started_key  # RQ's StartedJobRegistry: the running generations
        self._redis = client
        self._port = redis_port
        self._stop = threading.Event()
        self.cost = PhaseCost()

    def __enter__(self) -> Meter:
        self._cpu0 = {p.role: self._cpu(p) for p in self._procs}
        self._self0 = os.times()
        for p in self._procs:
            rss = sum(rss_kib(pid) for pid in p.measured)
            self.cost.roles[p.role] = Cost(rss_before_kib=rss, rss_peak_kib=rss)
        self._stats0 = self._commandstats()
        self._mem0 = self._redis.info("memory")["used_memory"]
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        for p in self._procs:
            self.cost.roles[p.role].cpu = self._cpu(p) - self._cpu0[p.role]
        t = os.times()
        self.cost.roles["loadgen"] = Cost(cpu=(t.user + t.system) - (self._self0.user + self._self0.system))
        stats1 = self._commandstats()
        self.cost.commands = {k: v - self._stats0.get(k, 0) for k, v in stats1.items() if v - self._stats0.get(k, 0) > 0}
        # INFO and ZCARD calls are the meter's own.
        for own in ("info", "zcard"):
            self.cost.commands.pop(own, None)
        self.cost.redis_memory_delta = self._redis.info("memory")["used_memory"] - self._mem0

    def _cpu(self, proc: Proc) -> float:
        return sum(cpu_seconds(pid) for pid in proc.measured)

    def _commandstats(self) -> dict[str, int]:
        return {name.removeprefix("cmdstat_"): stats["calls"]
                for name, stats in self._redis.info("commandstats").items()}

    def _sample(self) -> None:
        while not self._stop.wait(SAMPLE_SECONDS):
            if self._started_key:
                running = self._redis.zcard(self._started_key)
                self.cost.running_peak = max(self.cost.running_peak, running)
            for p in self._procs:
                cost = self.cost.roles[p.role]
                try:
                    cost.rss_peak_kib = max(cost.rss_peak_kib, sum(rss_kib(pid) for pid in p.measured))
                    if p.role.startswith("gateway"):
                        conns = redis_connections(p.measured, self._port) // max(len(p.measured), 1)
                        cost.redis_connections_peak = max(cost.redis_connections_peak, conns)
                except (OSError, ValueError):
                    continue  # a process that just exited
