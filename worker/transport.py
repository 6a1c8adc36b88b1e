"""The worker's HTTP transport to the model: the SDK's requests over urllib3.

The openai SDK still builds each request, sends it through this transport,
retries it and maps its status errors; only the wire changes. httpx's own
transport (httpcore and h11, pure Python) cost about a third of the worker's
CPU per token, most of it per chunk of the answer's body (docs/benchmarks.md).
urllib3 reads through http.client's buffered reader, in C, and gives each
chunk of a chunked body as it arrives.

Errors are raised as httpx's, so the SDK retries and maps them as it does for
its own transport, and worker/upstream.py maps them once more for clients.

The read timeout bounds the wait for the response's head as a socket timeout;
for the body, where it bounds the silence between two chunks, one StallWatch
ends a silent body instead: under gevent a socket timeout starts and cancels
a timer for every read, ~6 us of the ~40 a chunk costs (`python -m
bench.read_cost notimeout`).
A proxy from the environment (HTTPS_PROXY and the like) is httpx's to honour:
`wants_httpx` tells when to keep the SDK's own transport.
"""

from __future__ import annotations

import contextlib
import threading
import time
import urllib.parse
import urllib.request
from collections.abc import Iterator

import httpx2
import urllib3
from urllib3 import exceptions as u3

__all__ = ["StallWatch", "Urllib3Transport", "wants_httpx"]

READ_SIZE = 64 * 1024
# How often the StallWatch looks: a silent body ends between its read
# timeout and that plus this.
WATCH_PERIOD = 0.5


class Urllib3Transport(httpx2.BaseTransport):
    """An httpx transport over urllib3 pools of keep-alive connections."""

    def __init__(self, connections: int) -> None:
        """`connections`: the connections kept alive to each host (the
        worker's concurrency, so an answer seldom waits for a connect)."""
        self._pool = urllib3.PoolManager(
            maxsize=connections,
            retries=False,  # the SDK retries
            ssl_context=httpx2.create_ssl_context(),  # the SDK's own trust: the system store
        )
        self._watch = StallWatch()

    def handle_request(self, request: httpx2.Request) -> httpx2.Response:
        """Send `request`; its response's body is read as the caller iterates."""
        timeouts = request.extensions.get("timeout", {})
        with mapped_errors():
            response = self._pool.urlopen(
                request.method,
                str(request.url),
                body=request.read(),
                headers=dict(request.headers),
                redirect=False,  # the SDK's client follows redirects itself
                retries=False,
                timeout=urllib3.Timeout(connect=timeouts.get("connect"), read=timeouts.get("read")),
                preload_content=False,
                decode_content=False,  # httpx decodes, as for its own transport
            )
        return httpx2.Response(
            status_code=response.status,
            headers=list(response.headers.items()),
            stream=Body(response, self._watch, timeouts.get("read")),
            extensions={"http_version": b"HTTP/1.1", "reason_phrase": response.reason.encode("latin-1")},
        )

    def close(self) -> None:
        """Close every pooled connection."""
        self._pool.clear()


class Body(httpx2.SyncByteStream):
    """A response's body, its bytes as they arrive (content-encoded, if so).

    With a `timeout`, the StallWatch ends it once it is silent that long;
    its reader then gets httpx's ReadTimeout, as from a socket timeout."""

    def __init__(self, response: urllib3.BaseHTTPResponse, watch: StallWatch, timeout: float | None) -> None:
        self._response = response
        self.timeout = timeout
        self.heard = time.monotonic()
        self.stalled = False
        self._reader: int | None = None  # the thread (greenlet) iterating the body
        self._cut = False  # shut by `stall` or by `close` from another thread
        self._watch: StallWatch | None = None
        sock = getattr(response.connection, "sock", None)
        if timeout and sock is not None:
            sock.settimeout(None)  # urllib3 sets it again for the connection's next request
            self._watch = watch
            watch.watch(self)

    def __iter__(self) -> Iterator[bytes]:
        self._reader = threading.get_ident()
        try:
            with mapped_errors():
                for data in self._chunks():
                    self.heard = time.monotonic()
                    yield data
        except Exception:
            # Ended by the watch, the read fails in whichever way the socket
            # (or TLS) layer has for a socket shut under it.
            if self.stalled:
                raise self._timeout() from None
            raise
        finally:
            self._reader = None
            self._forget()
            if self._cut:
                self.close()
        if self.stalled:  # a body without a length ends where the watch cut it
            raise self._timeout()

    def _chunks(self) -> Iterator[bytes]:
        response = self._response
        if response.chunked and response.supports_chunked_reads():
            yield from response.read_chunked(decode_content=False)
        else:
            while data := response.read1(READ_SIZE, decode_content=False):
                yield data

    def stall(self) -> None:
        """End the body: its reader stops with a ReadTimeout."""
        self.stalled = True
        self._cut_short()

    def close(self) -> None:
        """Give the connection back to the pool if the body was read to its
        end, else close it: the rest of an unread body would be read as the
        next request's response.

        Called while another thread (greenlet) reads the body, it only cuts
        the body short: the reader's buffered file may not be closed under
        it, so the reader closes the connection when its read fails."""
        self._forget()
        if self._reader is not None and self._reader != threading.get_ident():
            self._cut_short()
            return
        if not self._response.closed:
            self._response.close()
        self._response.release_conn()

    def _cut_short(self) -> None:
        self._cut = True
        try:
            self._response.shutdown()
        except (ValueError, RuntimeError):
            pass  # its connection closed or went back to the pool: nothing left to end

    def _forget(self) -> None:
        if self._watch is not None:
            self._watch.forget(self)
            self._watch = None

    def _timeout(self) -> httpx2.ReadTimeout:
        return httpx2.ReadTimeout(f"the model sent nothing for {self.timeout:g} s")


class StallWatch:
    """Ends every watched body that stays silent past its timeout. Its
    thread (a greenlet under gevent) runs only while a body is watched."""

    def __init__(self, period: float = WATCH_PERIOD) -> None:
        self._period = period
        self._bodies: set[Body] = set()
        self._lock = threading.Lock()
        self._running = False

    @property
    def running(self) -> bool:
        """Whether the watch's thread runs."""
        return self._running

    @property
    def watching(self) -> int:
        """How many bodies are watched."""
        return len(self._bodies)

    def watch(self, body: Body) -> None:
        """Watch `body` until `forget(body)`."""
        with self._lock:
            self._bodies.add(body)
            if not self._running:
                self._running = True
                threading.Thread(target=self._run, name="spool-upstream-stalls", daemon=True).start()

    def forget(self, body: Body) -> None:
        """Stop watching `body`."""
        with self._lock:
            self._bodies.discard(body)

    def _run(self) -> None:
        while True:
            time.sleep(self._period)
            with self._lock:
                if not self._bodies:
                    self._running = False
                    return
                bodies = list(self._bodies)
            now = time.monotonic()
            for body in bodies:
                if now - body.heard > body.timeout:
                    self.forget(body)
                    body.stall()


@contextlib.contextmanager
def mapped_errors() -> Iterator[None]:
    """Raise urllib3's (and the socket's) errors as httpx's, the terms the SDK
    retries and maps by."""
    try:
        yield
    except Exception as exc:
        mapped = httpx_error(exc)
        if mapped is None:
            raise
        raise mapped from exc


def httpx_error(exc: Exception) -> httpx2.HTTPError | None:
    """The httpx error that stands for `exc`; None for anything else (a bug)."""
    if isinstance(exc, httpx2.HTTPError):
        return None
    message = str(exc)
    # NewConnectionError is a ConnectTimeoutError to urllib3: it comes first.
    if isinstance(exc, (u3.NewConnectionError, u3.SSLError, u3.LocationValueError)):
        return httpx2.ConnectError(message)
    if isinstance(exc, u3.ConnectTimeoutError):
        return httpx2.ConnectTimeout(message)
    if isinstance(exc, (u3.ReadTimeoutError, TimeoutError)):
        return httpx2.ReadTimeout(message)
    if isinstance(exc, u3.ProxyError):
        return httpx2.ProxyError(message)
    if isinstance(exc, (u3.ProtocolError, u3.IncompleteRead, u3.InvalidChunkLength)):
        return httpx2.RemoteProtocolError(message)
    if isinstance(exc, (u3.HTTPError, OSError)):
        return httpx2.ReadError(message)
    return None


def wants_httpx(base_url: str) -> bool:
    """True when the environment names a proxy for `base_url` (default
    api.openai.com), which httpx honours and this transport does not."""
    host = urllib.parse.urlsplit(base_url or "https://api.openai.com/v1").hostname or ""
    proxies = urllib.request.getproxies_environment()
    if not {"http", "https", "all"} & proxies.keys():
        return False
    return not urllib.request.proxy_bypass_environment(host, proxies)
