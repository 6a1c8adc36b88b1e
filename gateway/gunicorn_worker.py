"""The gateway's gunicorn worker: gevent's, with deadlines for slow peers and
JSON for the errors gunicorn answers itself.

gunicorn_conf.py loads this file by path, in gunicorn's master, before the
gevent workers patch the standard library: it must not import the gateway
package, Flask or prometheus_client at module level (they import ssl).

What it adds to `gunicorn.workers.ggevent.GeventWorker` (docs/reliability.md,
"Slow clients"):

- Header deadline. `timeout_ctx()` is the hook gunicorn's async worker wraps
  around reading each request's line and headers, keep-alive wait included;
  the gevent worker bounds it by `keepalive`. Here it is
  SPOOL_GATEWAY_HEADER_TIMEOUT (gunicorn_conf.py sets `keepalive` to the same
  value), so a client sending its headers a byte a second is cut by then.
- Send timeout. Once a request's headers are read, its socket gets a timeout
  of SPOOL_GATEWAY_SEND_TIMEOUT: every read of the body and every write of
  the response must make progress within it (gevent's `sendall` bounds the
  whole call). A reader that stops reading is cut and counted in
  `spool_gateway_slow_clients_cut_total`; its stream stays in Redis, so it
  can resume with `after=`.
- Send buffer. SPOOL_GATEWAY_SEND_BUFFER > 0 fixes each connection's
  SO_SNDBUF, bounding what a reader that stopped reading holds in the kernel
  (and costs the gateway to encode) before the send timeout runs.
- Per-IP cap. With SPOOL_GATEWAY_MAX_CONNECTIONS_PER_IP > 0, a peer address
  holding that many connections has further ones closed at once. Off by
  default: behind nginx every connection comes from nginx's address.
- JSON error pages. gunicorn answers a bad request line, a line over 4,094
  bytes or oversized headers itself, before the app runs, with an HTML page
  written by `handle_error`; it is rewritten as `{"error": {"code", "message"}}`.
"""

from __future__ import annotations

import json
import os
import socket
from collections import Counter

from gunicorn.workers.ggevent import GeventWorker

# gunicorn's own error statuses under the codes docs/protocol.md lists.
_ERROR_CODES = {
    400: "bad_request",
    403: "forbidden",
    414: "request_line_too_long",
    417: "expectation_failed",
    431: "headers_too_large",
    500: "internal_error",
    501: "not_implemented",
}


def _env_seconds(name: str, default: float) -> float:
    value = float(os.environ.get(name, default))
    if value <= 0:
        raise ValueError(f"{name} must be positive")
    return value


HEADER_TIMEOUT = _env_seconds("SPOOL_GATEWAY_HEADER_TIMEOUT", 15)
SEND_TIMEOUT = _env_seconds("SPOOL_GATEWAY_SEND_TIMEOUT", 30)
MAX_CONNECTIONS_PER_IP = int(os.environ.get("SPOOL_GATEWAY_MAX_CONNECTIONS_PER_IP", "0"))
# SO_SNDBUF of each connection in bytes; 0 leaves the kernel's autotuning,
# which lets a reader that never reads park up to tcp_wmem's maximum (4 MB
# on Linux) in the kernel, all of it encoded by the gateway first.
SEND_BUFFER = int(os.environ.get("SPOOL_GATEWAY_SEND_BUFFER", "0"))


def json_error_page(status_line: bytes) -> bytes:
    """A complete HTTP/1.1 JSON error response for gunicorn's `status_line`
    (`HTTP/1.1 414 URI Too Long`). The message is the reason phrase only:
    gunicorn's own message may quote the request line, tokens included."""
    parts = status_line.decode("latin-1").split(" ", 2)
    status = int(parts[1]) if len(parts) > 1 and parts[1].isdigit() else 500
    reason = parts[2].strip() if len(parts) > 2 else "Error"
    body = json.dumps({"error": {"code": _ERROR_CODES.get(status, "http_error"), "message": reason}},
                      separators=(",", ":")).encode()
    head = (f"HTTP/1.1 {status} {reason}\r\nConnection: close\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(body)}\r\n\r\n")
    return head.encode("latin-1") + body


class _ErrorPageRewriter:
    """The client socket as `handle_error` sees it: what gunicorn writes is
    replaced by the JSON page for the same status; the rest is the socket."""

    def __init__(self, sock: socket.socket) -> None:
        self._sock = sock

    def sendall(self, data: bytes, *args) -> None:
        self._sock.sendall(json_error_page(bytes(data).split(b"\r\n", 1)[0]), *args)

    def send(self, data: bytes, *args) -> int:
        self.sendall(data, *args)
        return len(data)

    def __getattr__(self, name: str):
        return getattr(self._sock, name)


class SpoolWorker(GeventWorker):
    """gunicorn's gevent worker with the slow-peer guards above."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self._per_ip: Counter[str] = Counter()

    def timeout_ctx(self):
        import gevent

        # gunicorn wraps this around the keep-alive wait and the read of a
        # request line and its headers; when it fires, the connection is
        # closed without an answer (`False`: no exception to log).
        return gevent.Timeout(HEADER_TIMEOUT, False)

    def handle(self, listener, client, addr) -> None:
        ip = addr[0] if isinstance(addr, tuple) else ""
        if MAX_CONNECTIONS_PER_IP and self._per_ip[ip] >= MAX_CONNECTIONS_PER_IP:
            _count_cut("per_ip_cap")
            client.close()
            return
        self._per_ip[ip] += 1
        if SEND_BUFFER:
            client.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, SEND_BUFFER)
        try:
            super().handle(listener, client, addr)
        finally:
            self._per_ip[ip] -= 1
            if not self._per_ip[ip]:
                del self._per_ip[ip]

    def handle_request(self, listener_name, req, sock, addr):
        # Headers are in: from here every read of the body and every write of
        # the response must progress within the send timeout.
        sock.settimeout(SEND_TIMEOUT)
        try:
            return super().handle_request(listener_name, req, sock, addr)
        except TimeoutError:
            # The response iterator was closed on the way out (the stream's
            # follower released); the stream itself stays resumable.
            _count_cut("io_timeout")
            self.log.info("cut a client that did not read for %ss: %s %s", SEND_TIMEOUT, req.method, req.path)
            raise StopIteration() from None

    def handle_error(self, req, client, addr, exc) -> None:
        super().handle_error(req, _ErrorPageRewriter(client), addr, exc)


def _count_cut(reason: str) -> None:
    from gateway.metrics import SLOW_CLIENTS_CUT

    SLOW_CLIENTS_CUT.labels(reason).inc()
