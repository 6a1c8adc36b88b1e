"""The embedded Redis of `spool dev`: fakeredis' TCP server, plus INFO.

RQ asks the server's version with INFO, which fakeredis does not implement;
its TCP server then closes the connection. The one extra command below,
registered the way fakeredis registers its own, answers it.
"""

from __future__ import annotations

import threading

from fakeredis import TcpFakeServer
from fakeredis._commands import command
from fakeredis._socket._fakesocket import FakeSocket

REPORTED_VERSION = b"7.4.0"


@command(name="INFO", fixed=(), repeat=(bytes,))
def info(self: FakeSocket, *sections: bytes) -> bytes:
    return b"# Server\r\nredis_version:" + REPORTED_VERSION + b"\r\nredis_mode:standalone\r\n"


FakeSocket.info = info


def start_fake_redis(host: str = "127.0.0.1", port: int = 0) -> TcpFakeServer:
    """Serve an in-memory Redis on a background thread; returns the server
    (its address is `server.server_address`; call shutdown() to stop it)."""
    server = TcpFakeServer((host, port), server_type="redis")
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, name="fake-redis", daemon=True).start()
    return server
