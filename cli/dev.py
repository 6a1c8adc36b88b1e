"""`spool dev`: the whole stack in one command, with no external services.

Redis is embedded (a real valkey-server, cli/embedded_redis.py) unless
REDIS_URL is set; the model is OpenAI when OPENAI_API_KEY is set, else the
mock. The gateway, worker and mock run as the same processes as in
production, so dev behaves like the real stack.

Ctrl-C stops everything in order (gateway, worker, mock, Redis) and exits 0.
The children run in process groups of their own, so the terminal's SIGINT
reaches only this process, which then stops them with SIGTERM; and when run
by make, this process takes the terminal's foreground for itself (see
_Foreground), or make would report the Ctrl-C as `*** [dev] Interrupt`.
"""

from __future__ import annotations

import contextlib
import errno
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from spool.logs import redact_url

__all__ = ["DevError", "check_port", "free_port", "run_dev"]

STARTUP_SECONDS = 60
STOP_SECONDS = 15


class DevError(Exception):
    """`spool dev` cannot start; the message says why, in one line."""


def free_port() -> int:
    """A TCP port free on 127.0.0.1 right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def check_port(port: int, host: str = "127.0.0.1") -> None:
    """Raise DevError at once if the gateway could not listen on `port`."""
    if not 0 < port < 65536:
        raise DevError(f"port {port} is not a TCP port (1-65535)")
    with socket.socket() as sock:
        # As gunicorn binds: a port held only by TIME_WAIT connections is free.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError as exc:
            if exc.errno == errno.EADDRINUSE:
                raise DevError(f"port {port} is already in use: stop what listens there, "
                               f"or choose another (spool dev --port N, make dev PORT=N)") from None
            raise DevError(f"cannot listen on {host}:{port}: {exc.strerror}") from None


def run_dev(port: int) -> int:
    """Start everything, print the URL, and run until Ctrl-C or a process dies."""
    try:
        check_port(port)
    except DevError as exc:
        print(f"spool dev: {exc}", file=sys.stderr)
        return 1
    with _Foreground(), contextlib.ExitStack() as stack:
        stop = stack.enter_context(_StopSignals())
        try:
            processes = _start(port, stack, dict(os.environ))
            url = f"http://127.0.0.1:{port}"
            _wait_healthy(url + "/healthz", processes, stop)
        except DevError as exc:
            print(f"spool dev: {exc}", file=sys.stderr)
            return 1
        except _Stopped:
            return 0
        print(f"\nspool is running at {url}\nPress Ctrl-C to stop.\n", flush=True)
        while not stop.requested:
            dead = [name for name, p in processes if p.poll() is not None]
            if dead:
                print(f"spool dev: {', '.join(dead)} exited; stopping", file=sys.stderr)
                return 1
            stop.wait(0.5)
        print("spool dev: stopping", file=sys.stderr, flush=True)
        return 0


def _start(port: int, stack: contextlib.ExitStack, env: dict[str, str]) -> list[tuple[str, subprocess.Popen]]:
    """Start Redis (unless given), the mock (unless a key is), the worker and
    the gateway; each is stopped when `stack` closes, in reverse order. Says
    which Redis and model it uses (passwords masked) before they start."""
    notes: list[str] = []
    if env.get("REDIS_URL"):
        notes.append(f"Redis: {redact_url(env['REDIS_URL'])}")
    else:
        from cli.embedded_redis import EmbeddedRedis, EmbeddedRedisError

        try:
            server = EmbeddedRedis().start()
        except EmbeddedRedisError as exc:
            raise DevError(f"{exc} (or set REDIS_URL to a Redis of yours)") from exc
        stack.callback(server.stop)
        env["REDIS_URL"] = server.url
        notes.append(f"Redis: embedded valkey-server at {server.url}; nothing is kept after exit")
    if env.get("SPOOL_STREAMS_REDIS_URL"):
        notes.append(f"Streams Redis: {redact_url(env['SPOOL_STREAMS_REDIS_URL'])}")
    if sys.stderr.isatty():
        env.setdefault("SPOOL_LOG_FORMAT", "text")

    env.setdefault("SPOOL_ALLOW_OPEN", "1")  # dev runs open unless keys are set (spool/security_config.py)
    processes: list[tuple[str, subprocess.Popen]] = []

    def spawn(name: str, *args: str) -> None:
        # A process group of its own: the terminal's Ctrl-C reaches only
        # spool dev, which stops its children in order.
        process = subprocess.Popen([sys.executable, "-m", "cli", *args], env=env, process_group=0)
        processes.append((name, process))
        stack.callback(_stop, process)

    if env.get("OPENAI_API_KEY"):
        base = env.get("OPENAI_BASE_URL") or "https://api.openai.com/v1"
        notes.append(f"Model: OpenAI-compatible API at {redact_url(base)}")
    else:
        mock_port = free_port()
        env["OPENAI_BASE_URL"] = f"http://127.0.0.1:{mock_port}/v1"
        env["OPENAI_API_KEY"] = "mock"
        env["SPOOL_MOCK_UPSTREAM"] = "1"  # the page says so (gateway/upstream_info.py)
        env.setdefault("SPOOL_DEFAULT_MODEL", "mock")
        # The mock's models (mock-reasoning, mock-refusal, ...) cost nothing: any is allowed.
        env.setdefault("SPOOL_MODELS", "*")
        spawn("mock-upstream", "mock-upstream", "--port", str(mock_port))
        notes.append(f"Model: the built-in MOCK upstream at {env['OPENAI_BASE_URL']} (set OPENAI_API_KEY for OpenAI)")

    static = Path(__file__).resolve().parent.parent / "frontend" / "dist"
    if static.is_dir() and not env.get("SPOOL_STATIC_DIR"):
        env["SPOOL_STATIC_DIR"] = str(static)
    print("\n".join(["", *notes, ""]), flush=True)
    spawn("worker", "worker")
    spawn("gateway", "gateway", "--bind", f"127.0.0.1:{port}", "--workers", "1")
    return processes


def _stop(process: subprocess.Popen) -> None:
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
    try:
        process.wait(timeout=STOP_SECONDS)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def _wait_healthy(url: str, processes: list[tuple[str, subprocess.Popen]], stop: _StopSignals) -> None:
    deadline = time.monotonic() + STARTUP_SECONDS
    while time.monotonic() < deadline:
        dead = [name for name, p in processes if p.poll() is not None]
        if dead:
            raise DevError(f"{', '.join(dead)} exited during start-up (see its output above)")
        try:
            with urllib.request.urlopen(url, timeout=1):
                return
        except OSError:
            if stop.wait(0.2):
                raise _Stopped() from None
    raise DevError(f"{url} did not answer within {STARTUP_SECONDS}s")


class _Stopped(Exception):
    """Ctrl-C (or SIGTERM) arrived during start-up."""


class _StopSignals:
    """Turns SIGINT and SIGTERM into a flag the main loop waits on, so a stop
    never interrupts start-up or shutdown halfway."""

    def __init__(self) -> None:
        self.requested = False
        self._previous: dict[int, object] = {}

    def __enter__(self) -> _StopSignals:
        for sig in (signal.SIGINT, signal.SIGTERM):
            self._previous[sig] = signal.signal(sig, self._on_signal)
        return self

    def __exit__(self, *exc: object) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)

    def _on_signal(self, signum: int, frame: object) -> None:
        self.requested = True

    def wait(self, seconds: float) -> bool:
        """Sleep up to `seconds` (a signal ends the sleep early); True once a stop was requested."""
        if not self.requested:
            time.sleep(seconds)
        return self.requested


class _Foreground:
    """Under make (or any parent in the terminal's foreground process group),
    move this process into a group of its own and give that group the
    terminal, so Ctrl-C's SIGINT reaches only spool dev; on exit, give the
    terminal back. Does nothing without a terminal or when this process
    already leads the foreground group (run from a shell)."""

    def __init__(self) -> None:
        self._tty: int | None = None
        self._previous_group = 0

    def __enter__(self) -> _Foreground:
        try:
            tty = sys.stdin.fileno()
            if not os.isatty(tty) or os.tcgetpgrp(tty) != os.getpgrp() or os.getpgrp() == os.getpid():
                return self
            self._previous_group = os.getpgrp()
            os.setpgid(0, 0)
            self._hand_terminal(tty, os.getpgrp())
            self._tty = tty
        except (OSError, ValueError):
            pass  # no terminal to take: Ctrl-C then reaches make too, nothing worse
        return self

    def __exit__(self, *exc: object) -> None:
        if self._tty is not None:
            with contextlib.suppress(OSError):
                self._hand_terminal(self._tty, self._previous_group)

    @staticmethod
    def _hand_terminal(tty: int, group: int) -> None:
        # A process that is not in the foreground group gets SIGTTOU for
        # tcsetpgrp unless it ignores it (POSIX), as shells do.
        previous = signal.signal(signal.SIGTTOU, signal.SIG_IGN)
        try:
            os.tcsetpgrp(tty, group)
        finally:
            signal.signal(signal.SIGTTOU, previous)
