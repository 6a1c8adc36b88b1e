"""A small test client for the stream routes, built on requests."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

import requests

from spool.decoders import NDJSONDecoder, SSEDecoder


def answer_text(events: list[dict[str, Any]]) -> str:
    """The answer the events spell: deltas in order, starting over at each reset."""
    parts: list[str] = []
    for event in events:
        if event["type"] == "delta":
            parts.append(event["text"])
        elif event["type"] == "reset":
            parts = []
    return "".join(parts)


def chat(prompt: str, **extra: Any) -> dict[str, Any]:
    """A request body with one user message."""
    return {"messages": [{"role": "user", "content": prompt}], **extra}


@dataclass
class Received:
    """What one response delivered."""

    stream_id: str
    events: list[dict[str, Any]] = field(default_factory=list)
    heartbeats: int = 0
    info: list[dict[str, Any]] = field(default_factory=list)
    sse_ids: list[str | None] = field(default_factory=list)

    @property
    def text(self) -> str:
        return answer_text(self.events)

    @property
    def seqs(self) -> list[int]:
        return [e["seq"] for e in self.events]

    @property
    def terminal(self) -> dict[str, Any] | None:
        last = self.events[-1] if self.events else None
        return last if last and last["type"] in ("done", "error", "cancelled") else None


def read(response: requests.Response, *, stop_after: int | None = None, sse: bool = False) -> Received:
    """Read a stream response to its end, or close it after `stop_after` events."""
    response.raise_for_status()
    received = Received(response.headers["X-Stream-Id"])
    decoder = SSEDecoder() if sse else NDJSONDecoder()
    try:
        for chunk in response.iter_content(chunk_size=None):
            for item in decoder.feed(chunk):
                if sse:
                    obj = json.loads(item.data)
                    if "seq" in obj:
                        received.sse_ids.append(item.id)
                else:
                    obj = item
                if obj["type"] == "heartbeat":
                    received.heartbeats += 1
                    continue
                if "seq" not in obj:
                    received.info.append(obj)
                    continue
                received.events.append(obj)
                if stop_after is not None and len(received.events) >= stop_after:
                    return received
    finally:
        response.close()
    return received


def post_stream(base_url: str, body: dict[str, Any], *, sse: bool = False, headers: dict[str, str] | None = None,
                **kwargs: Any) -> requests.Response:
    """POST /v1/streams asking for a live NDJSON (or SSE) response."""
    accept = "text/event-stream" if sse else "application/x-ndjson"
    return requests.post(f"{base_url}/v1/streams", json=body, headers={"Accept": accept, **(headers or {})},
                         stream=True, timeout=30, **kwargs)


def get_events(base_url: str, stream_id: str, *, after: int | None = None, last_event_id: int | None = None,
               sse: bool = False) -> requests.Response:
    """GET the events route, resuming after a seq by query or by Last-Event-ID."""
    headers = {"Accept": "text/event-stream" if sse else "application/x-ndjson"}
    if last_event_id is not None:
        headers["Last-Event-ID"] = str(last_event_id)
    params = {} if after is None else {"after": after}
    return requests.get(f"{base_url}/v1/streams/{stream_id}/events", params=params, headers=headers,
                        stream=True, timeout=30)
