"""Real spool processes for tests: gateway(s), worker(s) and the mock upstream.

Each stack runs under its own random key prefix and queue name on the shared
Redis, so stacks never see each other's data, and it deletes its keys when it
stops. Process output goes to files whose tails are printed when a stack
fails to start.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import requests

from bench.redis_topologies import wait_until  # noqa: F401  (tests import it from here)
from cli.dev import free_port  # noqa: F401  (tests import it from here)
from spool.redis_client import connect

ROOT = Path(__file__).resolve().parent.parent
STARTUP_SECONDS = 30
STOP_SECONDS = 20


def http_ok(url: str) -> bool:
    try:
        return requests.get(url, timeout=1).ok
    except requests.RequestException:
        return False


@dataclass
class Process:
    """A spool process with its log file."""

    name: str
    popen: subprocess.Popen
    log_path: Path

    def log_tail(self, lines: int = 40) -> str:
        text = self.log_path.read_text(errors="replace").splitlines()
        return f"--- {self.name} ({self.log_path}) ---\n" + "\n".join(text[-lines:])

    def stop(self, sig: int = signal.SIGTERM) -> int | None:
        if self.popen.poll() is None:
            self.popen.send_signal(sig)
            try:
                self.popen.wait(timeout=STOP_SECONDS)
            except subprocess.TimeoutExpired:
                self.popen.kill()
                self.popen.wait()
        return self.popen.returncode


@dataclass
class Stack:
    """A running stack. `base_url` is the first gateway."""

    redis_url: str
    prefix: str
    env: dict[str, str]
    log_dir: Path
    mock_url: str = ""
    gateway_urls: list[str] = field(default_factory=list)
    processes: list[Process] = field(default_factory=list)

    @property
    def base_url(self) -> str:
        return self.gateway_urls[0]

    @property
    def gateway_procs(self) -> list[subprocess.Popen]:
        return [p.popen for p in self.processes if p.name.startswith("gateway")]

    @property
    def worker_procs(self) -> list[subprocess.Popen]:
        return [p.popen for p in self.processes if p.name.startswith("worker")]

    def mock_stats(self) -> list[dict[str, Any]]:
        """What the mock upstream saw, one dict per request."""
        return requests.get(self.mock_url.removesuffix("/v1") + "/_mock/stats", timeout=5).json()

    def spawn(self, name: str, *args: str, env: dict[str, str] | None = None) -> Process:
        """Start `spool <args>` with the stack's environment."""
        log_path = self.log_dir / f"{name}.log"
        log_file = open(log_path, "ab")
        popen = subprocess.Popen(
            [sys.executable, "-m", "cli", *args],
            env={**self.env, **(env or {})},
            stdout=log_file,
            stderr=subprocess.STDOUT,
            cwd=ROOT,
        )
        log_file.close()
        process = Process(name, popen, log_path)
        self.processes.append(process)
        return process

    def add_gateway(self) -> str:
        """Start one more gateway; returns its URL once it answers."""
        port = free_port()
        process = self.spawn(f"gateway-{len(self.gateway_urls)}", "gateway", "--bind", f"127.0.0.1:{port}", "--workers", "1")
        url = f"http://127.0.0.1:{port}"
        self._wait(process, lambda: http_ok(url + "/healthz"), f"{process.name} at {url}")
        self.gateway_urls.append(url)
        return url

    def add_worker(self, concurrency: int = 64) -> Process:
        """Start one more worker; returns once RQ lists it."""
        name = f"w-{uuid.uuid4().hex[:10]}"
        process = self.spawn(f"worker-{name}", "worker", "--concurrency", str(concurrency), "--name", name)
        client = connect(self.redis_url, max_connections=2)  # a plain or Sentinel URL
        try:
            self._wait(process, lambda: client.exists(f"rq:worker:{name}"), f"worker {name} to register")
        finally:
            client.close()
        return process

    def _wait(self, process: Process, predicate, what: str) -> None:
        def ready() -> bool:
            if process.popen.poll() is not None:
                raise RuntimeError(f"{process.name} exited with {process.popen.returncode}\n{process.log_tail()}")
            return bool(predicate())

        try:
            wait_until(ready, STARTUP_SECONDS, what)
        except TimeoutError as exc:
            raise TimeoutError(f"{exc}\n{process.log_tail()}") from None

    def logs(self) -> str:
        return "\n".join(p.log_tail() for p in self.processes)

    def stop(self) -> None:
        for process in reversed(self.processes):
            process.stop()
        client = connect(self.redis_url, max_connections=2)  # a plain or Sentinel URL
        try:
            keys = list(client.scan_iter(match=f"{self.prefix}:*", count=1000))
            keys += list(client.scan_iter(match=f"rq:*{self.prefix}*", count=1000))
            if keys:
                client.delete(*keys)
        finally:
            client.close()


def start_stack(
    redis_url: str,
    *,
    gateways: int = 1,
    workers: int = 1,
    worker_concurrency: int = 64,
    static_dir: str | None = None,
    env: dict[str, str] | None = None,
    mock_args: list[str] | None = None,
    log_dir: Path | None = None,
) -> Stack:
    """Start the mock upstream, `workers` workers and `gateways` gateways."""
    prefix = f"t{uuid.uuid4().hex[:12]}"
    mock_port = free_port()
    base_env = {
        **os.environ,
        "REDIS_URL": redis_url,
        "SPOOL_KEY_PREFIX": prefix,
        "SPOOL_QUEUE": prefix,
        "OPENAI_BASE_URL": f"http://127.0.0.1:{mock_port}/v1",
        "OPENAI_API_KEY": "mock",
        "SPOOL_DEFAULT_MODEL": "mock",
        # Tests name the mock's fault models (mock-error, ...), and run open
        # unless they pass keys: both are explicit opt-ins of the gateway.
        "SPOOL_MODELS": "*",
        "SPOOL_ALLOW_OPEN": "1",
        "SPOOL_UPSTREAM_MAX_RETRIES": "0",
        "PYTHONUNBUFFERED": "1",
    }
    if static_dir:
        base_env["SPOOL_STATIC_DIR"] = str(ROOT / static_dir)
    base_env.update(env or {})
    stack = Stack(redis_url, prefix, base_env, log_dir or Path(tempfile.mkdtemp(prefix="spool-stack-")))
    try:
        mock = stack.spawn("mock-upstream", "mock-upstream", "--port", str(mock_port), *(mock_args or []))
        stack.mock_url = f"http://127.0.0.1:{mock_port}/v1"
        stack._wait(mock, lambda: http_ok(f"http://127.0.0.1:{mock_port}/healthz"), "the mock upstream")
        for _ in range(workers):
            stack.add_worker(worker_concurrency)
        for _ in range(gateways):
            stack.add_gateway()
    except BaseException:
        stack.stop()
        raise
    return stack
