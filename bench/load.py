"""The load generator: N concurrent streams against one target, in one
asyncio process (aiohttp), timing every text chunk and checking every text.

A target is spool (POST /v1/streams, NDJSON), the direct proxy or the
resumable-stream peer (POST /v1/chat, NDJSON), or the mock upstream itself
(POST /chat/completions, SSE).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import random
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import aiohttp

from mock_upstream import expected_text

READ_TIMEOUT = 120


@dataclass(frozen=True)
class Target:
    """Where to send streams: `kind` is spool, direct, resumable or mock."""

    kind: str
    url: str


@dataclass
class StreamResult:
    """One stream as the client saw it."""

    exact: bool = False
    error: str | None = None
    ttft: float | None = None  # request sent -> first text, seconds
    total: float = 0.0  # request sent -> terminal event
    gaps: list[float] = field(default_factory=list)  # between text chunks
    resumes: list[float] = field(default_factory=list)  # reconnect -> first replayed event
    started: float = 0.0  # when the client sent its first request, seconds after the phase began


def chat_body(prompt: str, max_tokens: int | None) -> dict:
    body: dict = {"model": "mock", "messages": [{"role": "user", "content": prompt}]}
    if max_tokens:
        body["max_tokens"] = max_tokens
    return body


async def _lines(response: aiohttp.ClientResponse) -> AsyncIterator[bytes]:
    async for line in response.content:
        line = line.strip()
        if line:
            yield line


async def _pieces(session: aiohttp.ClientSession, target: Target, prompt: str,
                  max_tokens: int | None) -> AsyncIterator[tuple[str, str | None]]:
    """(text, terminal type or None) per received event with text or an end."""
    body = chat_body(prompt, max_tokens)
    if target.kind == "mock":
        body.update(stream=True)
        async with session.post(target.url + "/chat/completions", json=body,
                                headers={"Authorization": "Bearer mock"}) as response:
            response.raise_for_status()
            async for line in _lines(response):
                if not line.startswith(b"data:"):
                    continue
                data = line[5:].strip()
                if data == b"[DONE]":
                    yield "", "done"
                    return
                choices = json.loads(data).get("choices") or [{}]
                yield (choices[0].get("delta") or {}).get("content") or "", None
        return
    path = "/v1/streams" if target.kind == "spool" else "/v1/chat"  # direct and resumable alike
    async with session.post(target.url + path, json=body, headers={"Accept": "application/x-ndjson"}) as response:
        response.raise_for_status()
        async for line in _lines(response):
            event = json.loads(line)
            kind = event["type"]
            if kind in ("done", "error", "cancelled"):
                yield "", kind
                return
            if kind == "delta":
                yield event["text"], None


async def one_stream(session: aiohttp.ClientSession, target: Target, prompt: str, tokens: int,
                     max_tokens: int | None = None) -> StreamResult:
    """Run one stream to its end and time it."""
    result = StreamResult()
    text: list[str] = []
    start = last = time.perf_counter()
    try:
        # aclosing: leaving the loop at the terminal event closes the response at once.
        async with contextlib.aclosing(_pieces(session, target, prompt, max_tokens)) as pieces:
            async for piece, terminal in pieces:
                now = time.perf_counter()
                if piece:
                    if result.ttft is None:
                        result.ttft = now - start
                    else:
                        result.gaps.append(now - last)
                    last = now
                    text.append(piece)
                if terminal:
                    result.total = now - start
                    if terminal != "done":
                        result.error = terminal
                    break
            else:
                result.error = "ended without a terminal event"
    except (aiohttp.ClientError, asyncio.TimeoutError, ValueError) as exc:
        result.error = f"{type(exc).__name__}: {exc}"
    result.exact = result.error is None and "".join(text) == expected_text(prompt, tokens)
    return result


async def resumed_stream(session: aiohttp.ClientSession, gateway: str, prompt: str, tokens: int,
                         drops: int, rng: random.Random, drop_within: int = 25) -> StreamResult:
    """A spool stream whose client drops `drops` times, each within
    `drop_within` events, and resumes with ?after=<last seq> after a random
    offline pause."""
    result = StreamResult()
    text: list[str] = []
    last_seq = 0
    stream_id = None
    start = time.perf_counter()
    try:
        for attempt in range(drops + 1):
            drop_after = rng.randint(1, drop_within) if attempt < drops else None
            if stream_id is None:
                request = session.post(gateway + "/v1/streams", json=chat_body(prompt, None),
                                       headers={"Accept": "application/x-ndjson"})
            else:
                await asyncio.sleep(rng.uniform(0.1, 0.5))  # offline while the answer goes on
                request = session.get(f"{gateway}/v1/streams/{stream_id}/events", params={"after": str(last_seq)})
            sent = time.perf_counter()
            seen = 0
            async with request as response:
                response.raise_for_status()
                stream_id = response.headers["X-Stream-Id"]
                async for line in _lines(response):
                    event = json.loads(line)
                    if "seq" not in event:
                        continue  # heartbeat
                    if seen == 0 and attempt > 0:
                        result.resumes.append(time.perf_counter() - sent)
                    if event["seq"] != last_seq + 1:
                        raise ValueError(f"seq {event['seq']} after {last_seq}")
                    last_seq, seen = event["seq"], seen + 1
                    if event["type"] == "delta":
                        if result.ttft is None:
                            result.ttft = time.perf_counter() - start
                        text.append(event["text"])
                    elif event["type"] in ("done", "error", "cancelled"):
                        result.total = time.perf_counter() - start
                        result.error = None if event["type"] == "done" else event["type"]
                        result.exact = result.error is None and "".join(text) == expected_text(prompt, tokens)
                        return result
                    if drop_after is not None and seen >= drop_after:
                        break  # leaving the block closes the connection: a drop
            result.error = "ended without a terminal event"
    except (aiohttp.ClientError, asyncio.TimeoutError, ValueError, KeyError) as exc:
        result.error = f"{type(exc).__name__}: {exc}"
    return result


async def resumed_peer_stream(session: aiohttp.ClientSession, url: str, prompt: str, tokens: int,
                              drops: int, rng: random.Random, drop_within: int = 25) -> StreamResult:
    """`resumed_stream` against the resumable-stream peer: it resumes after a
    count of characters (`?skip=`, in JavaScript's unit, UTF-16 code units),
    not after a sequence number."""
    result = StreamResult()
    text: list[str] = []
    received = 0  # UTF-16 code units of the complete lines read so far
    stream_id = None
    start = time.perf_counter()
    try:
        for attempt in range(drops + 1):
            drop_after = rng.randint(1, drop_within) if attempt < drops else None
            if stream_id is None:
                request = session.post(url + "/v1/chat", json=chat_body(prompt, None),
                                       headers={"Accept": "application/x-ndjson"})
            else:
                await asyncio.sleep(rng.uniform(0.1, 0.5))  # offline while the answer goes on
                request = session.get(f"{url}/v1/chat/{stream_id}/stream", params={"skip": str(received)})
            sent = time.perf_counter()
            seen = 0
            async with request as response:
                response.raise_for_status()
                if response.status == 204:  # the peer keeps no finished answers
                    raise ValueError("the answer ended while the client was offline")
                stream_id = response.headers["X-Stream-Id"]
                async for raw in response.content:
                    if not raw.endswith(b"\n"):
                        break  # a torn last line: the connection ended
                    line = raw.decode()
                    received += len(line.encode("utf-16-le")) // 2
                    event = json.loads(line)
                    if seen == 0 and attempt > 0:
                        result.resumes.append(time.perf_counter() - sent)
                    seen += 1
                    if event["type"] == "delta":
                        if result.ttft is None:
                            result.ttft = time.perf_counter() - start
                        text.append(event["text"])
                    elif event["type"] in ("done", "error"):
                        result.total = time.perf_counter() - start
                        result.error = None if event["type"] == "done" else event["type"]
                        result.exact = result.error is None and "".join(text) == expected_text(prompt, tokens)
                        return result
                    if drop_after is not None and seen >= drop_after:
                        break  # leaving the block closes the connection: a drop
        result.error = "ended without a terminal event"
    except (aiohttp.ClientError, asyncio.TimeoutError, ValueError, KeyError) as exc:
        result.error = f"{type(exc).__name__}: {exc}"
    return result


async def run_streams(target: Target, concurrency: int, *, tokens: int, label: str, ramp: float = 0.0,
                      rounds: int = 1, max_tokens: int | None = None, drops: int = 0,
                      drop_within: int = 25, seed: int = 1) -> list[StreamResult]:
    """`concurrency` clients, started evenly over `ramp` seconds, each running
    `rounds` streams back to back (with `drops` random drops each: spool and
    resumable only)."""
    rng = random.Random(seed)
    connector = aiohttp.TCPConnector(limit=0, force_close=False)
    timeout = aiohttp.ClientTimeout(total=None, sock_connect=30, sock_read=READ_TIMEOUT)
    resumed = resumed_peer_stream if target.kind == "resumable" else resumed_stream
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:
        began = time.perf_counter()

        async def client(i: int) -> list[StreamResult]:
            await asyncio.sleep(ramp * i / max(concurrency, 1))
            out = []
            for r in range(rounds):
                prompt = f"{label} client {i} round {r}"
                # The coroutine runs on to sending its request without yielding.
                started = time.perf_counter() - began
                if drops:
                    out.append(await resumed(session, target.url, prompt, tokens, drops, rng, drop_within))
                else:
                    out.append(await one_stream(session, target, prompt, tokens, max_tokens))
                out[-1].started = started
            return out

        results = await asyncio.gather(*(client(i) for i in range(concurrency)))
    return [r for batch in results for r in batch]
