"""A small client for spool's native API, standard library only.

`SpoolClient.events(id)` returns an EventStream: iterate it for the stream's
events (dicts, docs/protocol.md) in seq order, each exactly once. When the
connection drops, or a gateway restarts, it reconnects by itself with
backoff from the last seq it delivered, and skips anything it already saw.
`cancel()` asks the server to stop the generation.

Errors: SpoolClientError when the gateway answered with an error status;
GatewayUnreachableError when it could not be reached at all (refused,
unknown host, no answer), for a request, or for a stream before the client
ever reached the gateway. Once it has, losing the gateway only makes a
stream reconnect (a gateway restart is not an error).
"""

from __future__ import annotations

import http.client
import json
import logging
import time
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlencode, urlsplit

from spool.decoders import NDJSONDecoder

__all__ = ["EventStream", "GatewayUnreachableError", "SpoolClient", "SpoolClientError"]

log = logging.getLogger(__name__)

TERMINAL_TYPES = frozenset({"done", "error", "cancelled"})
# Longer than the server's 15 s heartbeat: silence past it means a dead connection.
READ_TIMEOUT = 40.0


class SpoolClientError(Exception):
    """The server refused a request; `status` and `code` say why."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(f"{status} {code}: {message}")
        self.status = status
        self.code = code
        self.message = message


class GatewayUnreachableError(Exception):
    """No answer from the gateway at all; the message names the URL and the cause."""

    def __init__(self, base_url: str, cause: BaseException) -> None:
        reason = getattr(cause, "strerror", None) or str(cause) or type(cause).__name__
        super().__init__(f"cannot reach the gateway at {base_url}: {reason}")
        self.base_url = base_url


class SpoolClient:
    """Talks to one gateway at `base_url` (e.g. http://127.0.0.1:8000)."""

    def __init__(self, base_url: str, *, timeout: float = READ_TIMEOUT, max_backoff: float = 2.0,
                 give_up_after: float = 60.0) -> None:
        parts = urlsplit(base_url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"not an http(s) URL: {base_url!r}")
        self.base_url = base_url
        self.reached = False  # has the gateway ever answered this client?
        self._scheme = parts.scheme
        self._host = parts.hostname
        self._port = parts.port
        self._root = parts.path.rstrip("/")
        self.timeout = timeout
        self.max_backoff = max_backoff
        self.give_up_after = give_up_after

    def create(self, messages: list[dict[str, str]], **params: Any) -> str:
        """Queue a chat request (model, temperature, max_tokens); returns the stream id."""
        body = self._request("POST", "/v1/streams", {"messages": messages, **params})
        return body["id"]

    def status(self, stream_id: str) -> dict[str, Any]:
        """The stream's snapshot (GET /v1/streams/<id>)."""
        return self._request("GET", f"/v1/streams/{stream_id}")

    def cancel(self, stream_id: str) -> dict[str, Any]:
        """Ask the worker to stop; returns the status the server reports."""
        return self._request("POST", f"/v1/streams/{stream_id}/cancel")

    def events(self, stream_id: str, after: int = 0) -> EventStream:
        """The stream's events after seq `after`, resuming across dropped connections."""
        return EventStream(self, stream_id, after)

    def connect(self) -> http.client.HTTPConnection:
        """A new connection to the gateway."""
        cls = http.client.HTTPSConnection if self._scheme == "https" else http.client.HTTPConnection
        return cls(self._host, self._port, timeout=self.timeout)

    def path(self, path: str, query: dict[str, Any] | None = None) -> str:
        return self._root + path + (f"?{urlencode(query)}" if query else "")

    def _request(self, method: str, path: str, body: dict[str, Any] | None = None) -> dict[str, Any]:
        conn = self.connect()
        try:
            headers = {"Accept": "application/json"}
            payload = None
            if body is not None:
                payload = json.dumps(body).encode()
                headers["Content-Type"] = "application/json"
            conn.request(method, self.path(path), body=payload, headers=headers)
            response = conn.getresponse()
            self.reached = True
            data = response.read()
        except (OSError, http.client.HTTPException) as exc:
            raise GatewayUnreachableError(self.base_url, exc) from exc
        finally:
            conn.close()
        if response.status >= 400:
            raise _error(response.status, data)
        return json.loads(data)


class EventStream:
    """Iterator over one stream's events; reconnects after drops (see module doc)."""

    def __init__(self, client: SpoolClient, stream_id: str, after: int) -> None:
        self.client = client
        self.stream_id = stream_id
        self.last_seq = after
        self.reconnects = 0
        self._conn: http.client.HTTPConnection | None = None
        self._closed = False

    def __iter__(self) -> Iterator[dict[str, Any]]:
        delay = 0.1
        stalled_since: float | None = None
        while not self._closed:
            progressed = False
            try:
                for event in self._read_once():
                    progressed = True
                    yield event
                    if event["type"] in TERMINAL_TYPES:
                        return
            except (OSError, http.client.HTTPException, ValueError) as exc:
                if not self.client.reached and not isinstance(exc, ValueError):
                    raise GatewayUnreachableError(self.client.base_url, exc) from exc
                # ValueError: a half-written line when the connection was cut.
                log.info("stream %s: connection lost after seq %d (%s)", self.stream_id, self.last_seq, exc)
            except SpoolClientError as exc:
                if exc.status < 500:
                    raise
                log.info("stream %s: server unavailable (%s)", self.stream_id, exc)
            finally:
                self._close_conn()
            if self._closed:
                return
            now = time.monotonic()
            if progressed:
                delay, stalled_since = 0.1, None
            stalled_since = stalled_since or now
            if now - stalled_since > self.client.give_up_after:
                raise TimeoutError(f"stream {self.stream_id}: no progress for {self.client.give_up_after:.0f}s")
            time.sleep(delay)
            delay = min(delay * 2, self.client.max_backoff)
            self.reconnects += 1

    def _read_once(self) -> Iterator[dict[str, Any]]:
        self._conn = self.client.connect()
        path = self.client.path(f"/v1/streams/{self.stream_id}/events", {"after": self.last_seq})
        self._conn.request("GET", path, headers={"Accept": "application/x-ndjson"})
        response = self._conn.getresponse()
        self.client.reached = True
        if response.status != 200:
            raise _error(response.status, response.read())
        decoder = NDJSONDecoder()
        while True:
            chunk = response.read1(65536)
            if not chunk:
                return
            for event in decoder.feed(chunk):
                seq = event.get("seq")
                if seq is None or seq <= self.last_seq:
                    continue  # heartbeat, or already delivered before a reconnect
                self.last_seq = seq
                yield event

    def cancel(self) -> dict[str, Any]:
        """Cancel the generation on the server and stop iterating."""
        self.close()
        return self.client.cancel(self.stream_id)

    def close(self) -> None:
        """Stop iterating and drop the connection."""
        self._closed = True
        self._close_conn()

    def _close_conn(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None


def _error(status: int, data: bytes) -> SpoolClientError:
    try:
        error = json.loads(data)["error"]
        return SpoolClientError(status, error["code"], error["message"])
    except (ValueError, KeyError, TypeError):
        return SpoolClientError(status, "http_error", data[:200].decode(errors="replace"))
