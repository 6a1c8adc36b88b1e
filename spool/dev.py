"""`spool dev`: the whole stack in one command, with no external services.

Redis is embedded (fakeredis' TCP server) unless REDIS_URL is set; the model
is OpenAI when OPENAI_API_KEY is set, else the mock. The gateway, worker and
mock run as the same processes as in production, so dev behaves exactly like
the real stack.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

STARTUP_SECONDS = 30


def free_port() -> int:
    """A TCP port free on 127.0.0.1 right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def run_dev(port: int) -> int:
    """Start everything, print the URL, and run until Ctrl-C or a process dies."""
    env = dict(os.environ)
    notes = []
    server = None
    if not env.get("REDIS_URL"):
        from spool.fake_redis import start_fake_redis

        server = start_fake_redis()
        env["REDIS_URL"] = f"redis://127.0.0.1:{server.server_address[1]}/0"
        notes.append(f"Redis: embedded (fakeredis) at {env['REDIS_URL']}; nothing is kept after exit")
    else:
        notes.append(f"Redis: {env['REDIS_URL']}")

    env.setdefault("SPOOL_ALLOW_OPEN", "1")  # dev runs open unless keys are set (spool/security_config.py)
    spool = [sys.executable, "-m", "spool.cli"]
    processes: list[tuple[str, subprocess.Popen]] = []
    if env.get("OPENAI_API_KEY"):
        notes.append(f"Model: OpenAI-compatible API at {env.get('OPENAI_BASE_URL') or 'https://api.openai.com/v1'}")
    else:
        mock_port = free_port()
        env["OPENAI_BASE_URL"] = f"http://127.0.0.1:{mock_port}/v1"
        env["OPENAI_API_KEY"] = "mock"
        env.setdefault("SPOOL_DEFAULT_MODEL", "mock")
        processes.append(("mock-upstream", subprocess.Popen(spool + ["mock-upstream", "--port", str(mock_port)], env=env)))
        notes.append(f"Model: the built-in MOCK upstream at {env['OPENAI_BASE_URL']} (set OPENAI_API_KEY for OpenAI)")

    static = Path(__file__).resolve().parent.parent / "frontend" / "dist"
    if static.is_dir() and not env.get("SPOOL_STATIC_DIR"):
        env["SPOOL_STATIC_DIR"] = str(static)
    processes.append(("worker", subprocess.Popen(spool + ["worker"], env=env)))
    processes.append(("gateway", subprocess.Popen(
        spool + ["gateway", "--bind", f"127.0.0.1:{port}", "--workers", "1"], env=env)))

    try:
        url = f"http://127.0.0.1:{port}"
        _wait_healthy(url + "/healthz", processes)
        print("\n".join(["", *notes, "", f"spool is running at {url}", "Press Ctrl-C to stop.", ""]), flush=True)
        while all(p.poll() is None for _, p in processes):
            time.sleep(0.5)
        dead = [name for name, p in processes if p.poll() is not None]
        print(f"spool dev: {', '.join(dead)} exited; stopping", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 0
    finally:
        for _, process in processes:
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
        for _, process in processes:
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                process.kill()
        if server is not None:
            server.shutdown()
            server.server_close()


def _wait_healthy(url: str, processes: list[tuple[str, subprocess.Popen]]) -> None:
    deadline = time.monotonic() + STARTUP_SECONDS
    while time.monotonic() < deadline:
        if any(p.poll() is not None for _, p in processes):
            raise SystemExit("spool dev: a process exited during start-up (see its output above)")
        try:
            with urllib.request.urlopen(url, timeout=1):
                return
        except OSError:
            time.sleep(0.2)
    raise SystemExit(f"spool dev: {url} did not answer within {STARTUP_SECONDS}s")
