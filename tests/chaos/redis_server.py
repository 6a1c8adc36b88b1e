"""A private redis-server that chaos tests may stop, kill and restart."""

from __future__ import annotations

import shutil
import signal
import subprocess
from pathlib import Path

import redis

from tests.stack import free_port, wait_until


class RedisServer:
    """redis-server on a free loopback port, its data in `directory`."""

    def __init__(self, directory: Path, *, appendonly: bool = True, args: tuple[str, ...] = ()) -> None:
        binary = shutil.which("redis-server")
        if binary is None:
            raise RuntimeError("redis-server is not installed (scripts/system-deps installs it)")
        self.binary = binary
        self.directory = directory
        self.port = free_port()
        self.appendonly = appendonly
        self.args = list(args)  # more redis-server options, e.g. a memory cap
        self.process: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        args = [self.binary, "--port", str(self.port), "--bind", "127.0.0.1", "--dir", str(self.directory),
                "--save", "", "--appendonly", "yes" if self.appendonly else "no", "--logfile",
                str(self.directory / "redis.log"), *self.args]
        self.process = subprocess.Popen(args)
        client = redis.Redis(port=self.port, socket_connect_timeout=0.5)
        try:
            wait_until(lambda: _pings(client), 10, f"redis-server on port {self.port}")
        finally:
            client.close()

    def stop(self) -> None:
        """Shut down as a restart would: Redis writes its append-only file first."""
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            self.process.wait(timeout=20)

    def restart(self) -> None:
        self.stop()
        self.start()


def _pings(client: redis.Redis) -> bool:
    try:
        # Still loading the append-only file answers with an error.
        return bool(client.ping())
    except redis.RedisError:
        return False
