"""The upstream model call, through the official openai SDK.

Any OpenAI-compatible server works: the base URL and key come from
OPENAI_BASE_URL and OPENAI_API_KEY. Every parameter of the stored request
(gateway/validation.py) is sent as the client sent it. Failures become
UpstreamError with one of the error-event codes of docs/protocol.md and a
message safe for clients: the upstream's own message when it refused the
request (sanitised, capped, the key removed), else a summary; raw bodies are
never echoed.
"""

from __future__ import annotations

import json
import logging
import re
import select
import socket
from collections.abc import Iterator
from typing import Any

import httpx2
import openai
from gevent import monkey

from spool.errors import ConfigError, UpstreamError
from spool.settings import Settings
from worker.chunks import ChunkParser, Piece
from worker.transport import Urllib3Transport, wants_httpx

__all__ = ["Piece", "Upstream", "UpstreamCall", "upstream_error"]

log = logging.getLogger(__name__)

CONNECT_TIMEOUT = 10.0
# What an upstream may still send after `data: [DONE]` before the call is
# closed without reading on (a well-behaved one sends only the body's end).
MAX_BYTES_AFTER_DONE = 64 * 1024
# What spool sets itself: a request parameter of these names is never sent.
SPOOL_SET = frozenset({"model", "messages", "stream", "stream_options"})
# Requests stored before the `params` field kept these two at the top level.
LEGACY_PARAMS = ("temperature", "max_tokens")
# How the worker's HTTP requests reach the model (`http_client`).
UPSTREAM_TRANSPORTS = frozenset({"urllib3", "httpx"})
MAX_ERROR_MESSAGE = 500
MAX_ERROR_FIELD = 100
# Credentials an upstream may echo in an error message (its own or another's).
SECRET_PATTERN = re.compile(r"\b(?:sk|pk|rk)-[A-Za-z0-9_\-*.]{6,}|Bearer\s+\S+", re.IGNORECASE)


class Upstream:
    """A client for chat completions that yields Pieces."""

    def __init__(self, settings: Settings, *, connections: int = 64) -> None:
        """`connections`: how many calls may be open at once (the worker's
        concurrency); each keeps its HTTP connection alive for the next."""
        if not settings.openai_api_key:
            log.warning("OPENAI_API_KEY is empty; the upstream may refuse requests")
        self._secrets = (settings.openai_api_key,) if settings.openai_api_key else ()
        self._client = openai.OpenAI(
            api_key=settings.openai_api_key or "unset",
            base_url=settings.openai_base_url or None,
            max_retries=settings.upstream_max_retries,
            # The read timeout bounds the silence between two chunks: a stall.
            timeout=openai.Timeout(settings.upstream_timeout, connect=CONNECT_TIMEOUT),
            http_client=http_client(settings, connections),
        )

    def warm(self) -> None:
        """Run one whole answer through the SDK without the network, before
        the first job: the SDK imports its resources on first use, reads the
        platform for its headers (a `uname -p` subprocess, once for every
        call that starts before the first one has it: a burst of answers
        right after a start forked once per answer) and fills its type
        caches. The first answers after a start paid all of that.

        The answer goes through a copy of the client (`with_options`) on
        httpx's in-process MockTransport; nothing is sent."""
        canned = b'data: {"choices":[{"index":0,"delta":{"content":"ok"},"finish_reason":"stop"}]}\n\ndata: [DONE]\n\n'
        transport = httpx2.MockTransport(lambda request: httpx2.Response(
            200, headers={"content-type": "text/event-stream"}, stream=httpx2.ByteStream(canned)))
        local = self._client.with_options(http_client=httpx2.Client(transport=transport), max_retries=0)
        call = _open(local, {"model": "warm-up", "messages": [{"role": "user", "content": "hi"}]}, ())
        pieces = list(call)
        if [piece.text for piece in pieces] != ["ok"]:
            raise RuntimeError(f"the SDK's warm-up answer read as {pieces!r}")

    def open(self, request: dict[str, Any]) -> UpstreamCall:
        """Start streaming an answer to `request` ({"model", "messages", "params"}).

        Always streams with usage; every parameter goes to the upstream as it
        came, the SDK's own by name, the others through `extra_body`."""
        return _open(self._client, request, self._secrets)


def _open(client: openai.OpenAI, request: dict[str, Any], secrets: tuple[str, ...]) -> UpstreamCall:
    """Upstream.open with `client`."""
    params = dict(request.get("params") or {})
    for name in LEGACY_PARAMS:
        if request.get(name) is not None:
            params.setdefault(name, request[name])
    body = {k: v for k, v in params.items() if k not in SPOOL_SET}
    body["messages"] = request["messages"]
    body["stream_options"] = {"include_usage": True}
    try:
        # The SDK sends the request (auth, retries, status errors); the
        # body is parsed by ChunkParser, not into a pydantic model per chunk.
        # All but the model goes as `extra_body`, which the SDK documents
        # as taking precedence over its own arguments: its `create` walks
        # the messages it is given through its TypedDicts to change
        # nothing (a fifth of an answer's start, docs/benchmarks.md), and
        # spool's request is already the wire body (gateway/validation.py;
        # tests/unit/test_upstream_request.py pins that the walk is a no-op).
        response = client.chat.completions.with_streaming_response.create(
            model=request["model"], messages=[], stream=True, extra_body=body,
        ).__enter__()
    except Exception as exc:
        # `from None`: the SDK's exception text holds the upstream's body,
        # which may echo the API key; tracebacks (logs, RQ's job record)
        # must show only the summary.
        raise upstream_error(exc, secrets) from None
    return UpstreamCall(response, secrets)


class UpstreamCall:
    """One streaming answer. Iterate for Pieces; `close()` aborts the call."""

    def __init__(self, response: Any, secrets: tuple[str, ...] = ()) -> None:
        self._response = response  # an openai APIResponse, body not yet read
        self._secrets = secrets

    def __iter__(self) -> Iterator[Piece]:
        parser = ChunkParser()
        after_done = 0
        try:
            for data in self._body_chunks(self._response.http_response):
                if parser.done:
                    # The body's last bytes are read to its end, so the HTTP
                    # connection goes back to the pool instead of being closed:
                    # a new one per answer costs a connect (a TLS handshake on
                    # the real API) before the next answer's first token.
                    after_done += len(data)
                    if after_done > MAX_BYTES_AFTER_DONE:
                        return
                    continue
                yield from parser.feed(data)
        except Exception as exc:
            raise upstream_error(exc, self._secrets) from None  # see Upstream.open
        finally:
            self._response.close()

    def _body_chunks(self, body: Any) -> Iterator[bytes]:
        """The body's bytes as they came, past httpx's decoder layers (~3 us a
        chunk, docs/benchmarks.md), unless the upstream compressed them."""
        identity = body.headers.get("content-encoding", "identity").strip().lower() == "identity"
        return body.iter_raw() if identity else body.iter_bytes()

    def close(self) -> None:
        """Close the HTTP response, which ends the upstream generation."""
        self._response.close()


def http_client(settings: Settings, connections: int) -> httpx2.Client:
    """The SDK's HTTP client: on worker/transport.py's urllib3 transport
    unless SPOOL_UPSTREAM_TRANSPORT=httpx or the environment names a proxy
    for the upstream (httpx honours it); each keeps `connections` alive."""
    if settings.upstream_transport not in UPSTREAM_TRANSPORTS:
        raise ConfigError(f"SPOOL_UPSTREAM_TRANSPORT={settings.upstream_transport!r} is not one of "
                          + ", ".join(sorted(UPSTREAM_TRANSPORTS)))
    if settings.upstream_transport == "urllib3" and not wants_httpx(settings.openai_base_url):
        return openai.DefaultHttpxClient(transport=Urllib3Transport(connections))
    if settings.upstream_transport == "urllib3":
        log.info("a proxy is set for the upstream: its calls go through httpx's transport")
    if monkey.is_module_patched("select"):
        probe_pooled_connections_without_yielding()
    # The SDK's default pool (1,000 connections, 100 kept alive) would stall
    # a worker running more, and reconnect for most answers.
    return openai.DefaultHttpxClient(
        limits=httpx2.Limits(max_connections=connections, max_keepalive_connections=connections),
    )


def probe_pooled_connections_without_yielding() -> None:
    """Make httpcore's check of idle pooled connections a plain poll(0).

    Each time a request starts or ends, httpcore asks of every idle pooled
    connection whether the server closed it, with poll(0), holding the pool's
    lock (encode/httpcore#928 on how often). Under gevent the patched poll(0)
    switches to the event loop, so every check waits a turn of every running
    generation, lock held: with a few hundred connections pooled, answers
    waited seconds for the model (docs/benchmarks.md). A zero-timeout poll
    never blocks, so the original one serves.
    """
    try:
        from httpcore2._backends import sync as sync_backend
    except ImportError:
        log.warning("httpcore2's sync backend moved: pooled connections are checked cooperatively (slow under load)")
        return
    poll = monkey.get_original("select", "poll")

    def is_socket_readable(sock: socket.socket | None) -> bool:
        fd = None if sock is None else sock.fileno()
        if fd is None or fd < 0:
            return True  # as httpcore's own: a gone socket reads as closed
        poller = poll()
        poller.register(fd, select.POLLIN)
        return bool(poller.poll(0))

    sync_backend.is_socket_readable = is_socket_readable


def upstream_error(exc: BaseException, secrets: tuple[str, ...] = ()) -> UpstreamError:
    """Map an SDK (or parsing) failure to an UpstreamError.

    An HTTP error keeps its status; a refused request (a 4xx other than 401,
    403 and 429) also keeps the upstream's message, `param` and `code`,
    sanitised: `secrets` and anything shaped like a key are removed."""
    if isinstance(exc, UpstreamError):
        return exc
    if isinstance(exc, (openai.APITimeoutError, httpx2.TimeoutException)):
        return UpstreamError("upstream_timeout", "the model did not answer in time")
    if isinstance(exc, (openai.APIConnectionError, httpx2.TransportError)):
        return UpstreamError("upstream_unreachable", "could not reach the model")
    if isinstance(exc, openai.APIStatusError):
        status = exc.status_code
        if status == 429:
            return UpstreamError("upstream_rate_limited", "the model is rate limited (HTTP 429)", status=status)
        if status in (401, 403):
            # Never the upstream's words here: they are about the key.
            return UpstreamError("upstream_auth", f"the model refused the API key (HTTP {status})", status=status)
        if 400 <= status < 500:
            body = exc.body if isinstance(exc.body, dict) else {}
            message = _sanitised(body.get("message"), secrets, MAX_ERROR_MESSAGE)
            return UpstreamError(
                "upstream_rejected",
                message or f"the model rejected the request (HTTP {status})",
                status=status,
                param=_sanitised(body.get("param"), secrets, MAX_ERROR_FIELD),
                upstream_code=_sanitised(body.get("code"), secrets, MAX_ERROR_FIELD),
            )
        return UpstreamError("upstream_error", f"the model failed (HTTP {status})", status=status)
    if isinstance(exc, openai.APIError):
        return UpstreamError("upstream_error", "the model reported an error mid-answer")
    if isinstance(exc, (json.JSONDecodeError, ValueError, openai.OpenAIError)):
        return UpstreamError("upstream_error", "the model sent an unreadable answer")
    return UpstreamError("internal_error", "the worker failed while reading the answer")


def _sanitised(value: Any, secrets: tuple[str, ...], limit: int) -> str | None:
    """`value` fit for a client: a string without secrets or control
    characters, at most `limit` characters; None when there is nothing."""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        value = str(value)
    if not isinstance(value, str):
        return None
    for secret in secrets:
        value = value.replace(secret, "[redacted]")
    value = SECRET_PATTERN.sub("[redacted]", value)
    value = " ".join("".join(c if c.isprintable() else " " for c in value).split())
    if len(value) > limit:
        value = value[: limit - 1] + "…"
    return value or None
