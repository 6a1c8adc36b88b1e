"""A resilient reader for chaos tests: follows a stream to its end through
drops, gateway restarts and Redis restarts, and counts what went wrong."""

from __future__ import annotations

import random
import time
from dataclasses import dataclass, field
from typing import Any

import requests

from spool.decoders import NDJSONDecoder
from tests.client import answer_text, chat


@dataclass
class Outcome:
    """What one client saw of one stream."""

    prompt: str
    stream_id: str | None = None
    events: list[dict[str, Any]] = field(default_factory=list)
    drops: int = 0  # connections the client cut on purpose
    reconnects: int = 0
    duplicated: int = 0  # events delivered twice
    gaps: int = 0  # events skipped
    hung: bool = False
    refusals: list[str] = field(default_factory=list)  # 4xx answers (e.g. a resume's invalid_cursor)

    @property
    def terminal(self) -> dict[str, Any] | None:
        last = self.events[-1] if self.events else None
        return last if last and last["type"] in ("done", "error", "cancelled") else None

    @property
    def text(self) -> str:
        return answer_text(self.events)

    @property
    def resets(self) -> int:
        return sum(1 for e in self.events if e["type"] == "reset")


def run_client(base_urls: list[str], prompt: str, *, drops: int = 0, deadline: float = 60.0,
               rng: random.Random | None = None, **body: Any) -> Outcome:
    """POST a stream, then read it to its terminal event, cutting the
    connection `drops` times at random points and resuming each time."""
    rng = rng or random.Random(prompt)
    outcome = Outcome(prompt)
    end = time.monotonic() + deadline
    # Distinct, early cut points: coalescing may make an answer short in events.
    cut_after = sorted(rng.sample(range(1, 16), drops))
    gateway = rng.randrange(len(base_urls))
    while outcome.terminal is None:
        if time.monotonic() > end:
            outcome.hung = True
            return outcome
        base = base_urls[gateway % len(base_urls)]
        budget = cut_after[0] - len(outcome.events) if cut_after else None
        try:
            response = _open(base, outcome, prompt, body)
            cut = _read(response, outcome, budget, end)
        except (requests.RequestException, _Unavailable):
            cut = False
            gateway += 1  # that gateway may be gone: try the next
            time.sleep(0.1)
        if cut:
            cut_after.pop(0)
            outcome.drops += 1
        if outcome.terminal is None:
            outcome.reconnects += 1
    return outcome


class _Unavailable(Exception):
    pass


def _open(base: str, outcome: Outcome, prompt: str, body: dict[str, Any]) -> requests.Response:
    headers = {"Accept": "application/x-ndjson"}
    if outcome.stream_id is None:
        # The Idempotency-Key makes a retried POST safe: one stream, however often it is sent.
        headers["Idempotency-Key"] = f"chaos-{prompt}"
        response = requests.post(f"{base}/v1/streams", json=chat(prompt, **body), headers=headers,
                                 stream=True, timeout=(2, 10))
    else:
        last = outcome.events[-1]["seq"] if outcome.events else 0
        response = requests.get(f"{base}/v1/streams/{outcome.stream_id}/events", params={"after": last},
                                headers=headers, stream=True, timeout=(2, 10))
    if response.status_code >= 500:
        response.close()
        raise _Unavailable(response.status_code)
    if response.status_code >= 400:
        outcome.refusals.append(f"{response.status_code} {response.text[:200]}")
    response.raise_for_status()
    outcome.stream_id = response.headers["X-Stream-Id"]
    return response


def _read(response: requests.Response, outcome: Outcome, budget: int | None, end: float) -> bool:
    """Read events until the terminal one, the end of the body, or `budget`
    events (then cut: returns True)."""
    decoder = NDJSONDecoder()
    taken = 0
    try:
        for chunk in response.iter_content(chunk_size=None):
            for obj in decoder.feed(chunk):
                if "seq" not in obj:
                    continue
                last = outcome.events[-1]["seq"] if outcome.events else 0
                if obj["seq"] <= last:
                    outcome.duplicated += 1
                    continue
                # A jump onto a `reset` is the announced rerun after a failover
                # that may have lost events (docs/protocol.md), not a gap.
                if obj["seq"] != last + 1 and obj["type"] != "reset":
                    outcome.gaps += 1
                outcome.events.append(obj)
                taken += 1
                if outcome.terminal is not None:
                    return False
                if budget is not None and taken >= budget:
                    return True
            if time.monotonic() > end:
                return False
    finally:
        response.close()
    return False
