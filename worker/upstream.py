"""The upstream model call, through the official openai SDK.

Any OpenAI-compatible server works: the base URL and key come from
OPENAI_BASE_URL and OPENAI_API_KEY. Failures become UpstreamError with one of
the error-event codes of docs/protocol.md and a message safe for clients:
upstream bodies are summarised, never echoed.
"""

from __future__ import annotations

import json
import logging
import select
import socket
from collections.abc import Iterator
from typing import Any

import httpx2
import openai
from gevent import monkey

from spool.errors import UpstreamError
from spool.settings import Settings
from worker.chunks import ChunkParser, Piece

__all__ = ["Piece", "Upstream", "UpstreamCall", "upstream_error"]

log = logging.getLogger(__name__)

CONNECT_TIMEOUT = 10.0
# What an upstream may still send after `data: [DONE]` before the call is
# closed without reading on (a well-behaved one sends only the body's end).
MAX_BYTES_AFTER_DONE = 64 * 1024


class Upstream:
    """A client for chat completions that yields Pieces."""

    def __init__(self, settings: Settings, *, connections: int = 64) -> None:
        """`connections`: how many calls may be open at once (the worker's
        concurrency); each keeps its HTTP connection alive for the next."""
        if not settings.openai_api_key:
            log.warning("OPENAI_API_KEY is empty; the upstream may refuse requests")
        if monkey.is_module_patched("select"):
            probe_pooled_connections_without_yielding()
        self._client = openai.OpenAI(
            api_key=settings.openai_api_key or "unset",
            base_url=settings.openai_base_url or None,
            max_retries=settings.upstream_max_retries,
            # The read timeout bounds the silence between two chunks: a stall.
            timeout=openai.Timeout(settings.upstream_timeout, connect=CONNECT_TIMEOUT),
            # The SDK's default pool (1,000 connections, 100 kept alive) would
            # stall a worker running more, and reconnect for most answers.
            http_client=openai.DefaultHttpxClient(
                limits=httpx2.Limits(max_connections=connections, max_keepalive_connections=connections),
            ),
        )

    def open(self, request: dict[str, Any]) -> UpstreamCall:
        """Start streaming an answer to `request` (messages, model, ...)."""
        params: dict[str, Any] = {
            "model": request["model"],
            "messages": request["messages"],
            "stream": True,
            "stream_options": {"include_usage": True},
        }
        for name in ("temperature", "max_tokens", "tools", "tool_choice"):
            if request.get(name) is not None:
                params[name] = request[name]
        try:
            # The SDK sends the request (auth, retries, status errors); the
            # body is parsed by ChunkParser, not into a pydantic model per chunk.
            response = self._client.chat.completions.with_streaming_response.create(**params).__enter__()
        except Exception as exc:
            # `from None`: the SDK's exception text holds the upstream's body,
            # which may echo the API key; tracebacks (logs, RQ's job record)
            # must show only the summary.
            raise upstream_error(exc) from None
        return UpstreamCall(response)


class UpstreamCall:
    """One streaming answer. Iterate for Pieces; `close()` aborts the call."""

    def __init__(self, response: Any) -> None:
        self._response = response  # an openai APIResponse, body not yet read

    def __iter__(self) -> Iterator[Piece]:
        parser = ChunkParser()
        after_done = 0
        try:
            for data in self._response.iter_bytes():
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
            raise upstream_error(exc) from None  # see Upstream.open
        finally:
            self._response.close()

    def close(self) -> None:
        """Close the HTTP response, which ends the upstream generation."""
        self._response.close()


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


def upstream_error(exc: BaseException) -> UpstreamError:
    """Map an SDK (or parsing) failure to an UpstreamError."""
    if isinstance(exc, UpstreamError):
        return exc
    if isinstance(exc, (openai.APITimeoutError, httpx2.TimeoutException)):
        return UpstreamError("upstream_timeout", "the model did not answer in time")
    if isinstance(exc, (openai.APIConnectionError, httpx2.TransportError)):
        return UpstreamError("upstream_unreachable", "could not reach the model")
    if isinstance(exc, openai.APIStatusError):
        status = exc.status_code
        if status == 429:
            return UpstreamError("upstream_rate_limited", "the model is rate limited (HTTP 429)")
        if status in (401, 403):
            return UpstreamError("upstream_auth", f"the model refused the API key (HTTP {status})")
        if 400 <= status < 500:
            return UpstreamError("upstream_rejected", f"the model rejected the request (HTTP {status})")
        return UpstreamError("upstream_error", f"the model failed (HTTP {status})")
    if isinstance(exc, openai.APIError):
        return UpstreamError("upstream_error", "the model reported an error mid-answer")
    if isinstance(exc, (json.JSONDecodeError, ValueError, openai.OpenAIError)):
        return UpstreamError("upstream_error", "the model sent an unreadable answer")
    return UpstreamError("internal_error", "the worker failed while reading the answer")
