"""The worker's HTTP transport to the model: the SDK's requests over urllib3.

The openai SDK still builds each request, sends it through this transport,
retries it and maps its status errors; only the wire changes. httpx's own
transport (httpcore and h11, pure Python) cost about a third of the worker's
CPU per token, most of it per chunk of the answer's body (docs/benchmarks.md).
urllib3 reads through http.client's buffered reader, in C, and gives each
chunk of a chunked body as it arrives.

Errors are raised as httpx's, so the SDK retries and maps them as it does for
its own transport, and worker/upstream.py maps them once more for clients.
A proxy from the environment (HTTPS_PROXY and the like) is httpx's to honour:
`wants_httpx` tells when to keep the SDK's own transport.
"""

from __future__ import annotations

import contextlib
import urllib.parse
import urllib.request
from collections.abc import Iterator

import httpx2
import urllib3
from urllib3 import exceptions as u3

__all__ = ["Urllib3Transport", "wants_httpx"]

READ_SIZE = 64 * 1024


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
            stream=Body(response),
            extensions={"http_version": b"HTTP/1.1", "reason_phrase": response.reason.encode("latin-1")},
        )

    def close(self) -> None:
        """Close every pooled connection."""
        self._pool.clear()


class Body(httpx2.SyncByteStream):
    """A response's body, its bytes as they arrive (content-encoded, if so)."""

    def __init__(self, response: urllib3.BaseHTTPResponse) -> None:
        self._response = response

    def __iter__(self) -> Iterator[bytes]:
        response = self._response
        with mapped_errors():
            if response.chunked and response.supports_chunked_reads():
                yield from response.read_chunked(decode_content=False)
            else:
                while data := response.read1(READ_SIZE, decode_content=False):
                    yield data

    def close(self) -> None:
        """Give the connection back to the pool if the body was read to its
        end, else close it: the rest of an unread body would be read as the
        next request's response."""
        if not self._response.closed:
            self._response.close()
        self._response.release_conn()


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
