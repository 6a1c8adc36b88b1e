"""The processes a benchmark runs: private Redis servers, the mock upstream,
spool's gateway and workers, the direct proxy, the Node peer; and what each
one costs, read from /proc.

Every process runs on this machine under the benchmark's control, so its CPU
time and memory are attributable: Redis is a private `redis-server` on a free
port, not a shared one.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from cli.dev import free_port

CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
STARTUP_SECONDS = 60



def cpu_seconds(pid: int) -> float:
    """User + system CPU time the process has used so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS


def rss_kib(pid: int) -> int:
    """The process's resident set size now, in KiB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def children(pid: int) -> list[int]:
    """The process's direct children (gunicorn's workers)."""
    found = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        found += [int(c) for c in (task / "children").read_text().split()]
    return found


@dataclass
class Proc:
    """A started process; `measured` are the pids whose cost counts as its cost
    (a gunicorn master idles: its workers do the work)."""

    role: str
    popen: subprocess.Popen
    log_path: Path
    measured: list[int] = field(default_factory=list)

    def stop(self) -> None:
        if self.popen.poll() is None:
            self.popen.terminate()
            try:
                self.popen.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.popen.kill()
                self.popen.wait()


class Fleet:
    """Starts processes, remembers them, and stops them all on exit."""

    def __init__(self) -> None:
        self.procs: list[Proc] = []
        self.log_dir = Path(tempfile.mkdtemp(prefix="spool-bench-"))

    def __enter__(self) -> Fleet:
        return self

    def __exit__(self, *exc: object) -> None:
        for proc in reversed(self.procs):
            proc.stop()

    def start(self, role: str, argv: list[str], env: dict[str, str] | None = None) -> Proc:
        log_path = self.log_dir / f"{role}.log"
        with open(log_path, "ab") as log_file:
            popen = subprocess.Popen(argv, env={**os.environ, **(env or {})}, stdout=log_file,
                                     stderr=subprocess.STDOUT, cwd=Path(__file__).resolve().parent.parent)
        proc = Proc(role, popen, log_path, [popen.pid])
        self.procs.append(proc)
        return proc

    def redis(self, role: str = "redis") -> tuple[Proc, str]:
        """A private Redis without persistence; returns it and its URL."""
        binary = shutil.which("redis-server")
        if binary is None:
            raise RuntimeError("the benchmark needs redis-server on PATH (apt-get install redis-server)")
        port = free_port()
        proc = self.start(role, [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "",
                                    "--appendonly", "no", "--maxclients", "20000"])
        url = f"redis://127.0.0.1:{port}/0"
        self.wait(proc, lambda: _tcp_open(port), "redis-server")
        return proc, url

    def spool(self, role: str, args: list[str], env: dict[str, str]) -> Proc:
        return self.start(role, [sys.executable, "-m", "cli", *args], env)

    def mock(self, *, ttft_ms: float, tokens_per_second: float, tokens: int) -> tuple[Proc, str]:
        """The mock model (`spool mock-upstream`) answering as told; returns
        it, once it answers, and its OpenAI base URL."""
        port = free_port()
        proc = self.spool("mock", ["mock-upstream", "--port", str(port), "--ttft-ms", str(ttft_ms),
                                   "--tokens-per-second", str(tokens_per_second), "--tokens", str(tokens)], {})
        self.wait(proc, lambda: http_ok(f"http://127.0.0.1:{port}/healthz"), "mock upstream")
        return proc, f"http://127.0.0.1:{port}/v1"

    def gunicorn(self, role: str, app: str, port: int, workers: int, env: dict[str, str], config: str | None = None) -> Proc:
        """A gunicorn server; its workers are the measured processes."""
        argv = [sys.executable, "-m", "gunicorn", "--bind", f"127.0.0.1:{port}", "--workers", str(workers)]
        argv += ["--config", config] if config else ["--worker-class", "gevent", "--worker-connections", "10000"]
        proc = self.start(role, [*argv, app], env)
        self.wait(proc, lambda: http_ok(f"http://127.0.0.1:{port}/healthz"), role)
        self.wait(proc, lambda: len(children(proc.popen.pid)) == workers, f"{role} workers")
        proc.measured = children(proc.popen.pid)
        return proc

    def wait(self, proc: Proc, ready, what: str) -> None:
        deadline = time.monotonic() + STARTUP_SECONDS
        while time.monotonic() < deadline:
            if proc.popen.poll() is not None:
                raise RuntimeError(f"{what} exited with {proc.popen.returncode}; see {proc.log_path}")
            if ready():
                return
            time.sleep(0.05)
        raise TimeoutError(f"timed out waiting for {what}; see {proc.log_path}")


def http_ok(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=1) as response:
            return response.status == 200
    except OSError:
        return False


def _tcp_open(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
        return True
    except OSError:
        return False
