"""A stream cut anywhere resumes exactly, in every wire format, on fakeredis and real Redis.

For a tool-call stream and a reasoning stream, the whole response of each
format is cut at every byte (inside a tool call's arguments, inside
reasoning, inside a multi-byte character); the client keeps what it decoded
before the cut, resumes after the last seq it saw, and must reassemble the
identical message: NDJSON and SSE folded by spool's fold, the OpenAI format
accumulated by the openai SDK's own ChatCompletionStreamState.
"""

from __future__ import annotations

import json
from typing import Any

import copy
import inspect

import pytest
from openai._models import construct_type
from openai.lib.streaming.chat import ChatCompletionStreamState
from openai.types.chat import ChatCompletionChunk

from spool.decoders import NDJSONDecoder, SSEDecoder
from spool.events import EventType
from spool.keys import new_stream_id
from spool.message import MessageFold, fold
from spool.openai_wire import ChunkContext, OpenAIEncoder
from spool.tail import follow
from spool.wire import NdjsonEncoder, SseEncoder

REQUEST = {"messages": [{"role": "user", "content": "hi"}], "model": "m"}
USAGE = {"prompt_tokens": 5, "completion_tokens": 9, "total_tokens": 14,
         "completion_tokens_details": {"reasoning_tokens": 4}, "prompt_tokens_details": {"cached_tokens": 2}}
DONE_INFO = {"model": "m-2024", "system_fingerprint": "fp_x", "service_tier": "default"}

TOOL_CALLS = [
    (EventType.TOOL_CALL, {"index": 0, "id": "call_1", "tool_type": "function", "name": "weather"}),
    (EventType.TOOL_CALL_DELTA, {"index": 0, "arguments": '{"city": "Kö'}),
    (EventType.TOOL_CALL_DELTA, {"index": 0, "arguments": 'ln 日本'}),
    (EventType.TOOL_CALL_DELTA, {"index": 0, "arguments": '語 🙂"}'}),
    (EventType.TOOL_CALL, {"index": 1, "id": "call_2", "tool_type": "custom", "name": "shell"}),
    (EventType.TOOL_CALL_DELTA, {"index": 1, "arguments": "ls -la 🚀"}),
    (EventType.TOOL_CALL_DELTA, {"index": 1, "arguments": " /tmp"}),
    (EventType.DONE, {"finish_reason": "tool_calls", "usage": USAGE, **DONE_INFO}),
]
REASONING = [
    (EventType.REASONING, {"text": "Let me think: café "}),
    (EventType.REASONING, {"text": "naïve 🙂 über"}),
    (EventType.DELTA, {"text": "The answer "}),
    (EventType.LOGPROBS, {"content": [{"token": "The", "logprob": -0.1, "bytes": [84, 104, 101],
                                       "top_logprobs": []}]}),
    (EventType.DELTA, {"text": "is 日本語"}),
    (EventType.REFUSAL, {"text": "but not that"}),
    (EventType.DONE, {"finish_reason": "stop", "usage": USAGE, **DONE_INFO}),
]


def written(store, events: list[tuple[EventType, dict[str, Any]]]) -> str:
    sid = new_stream_id()
    store.create(sid, REQUEST)
    store.leases.acquire(sid, 30, "w")  # seq 1: start
    store.append(sid, "w", 2, events)
    return sid


class Format:
    """A wire format as a client sees it: its encoder, how it decodes bytes into
    units with their seq, and how units become the final message."""

    def __init__(self, name: str) -> None:
        self.name = name

    def encoder(self, sid: str):
        if self.name == "ndjson":
            return NdjsonEncoder()
        if self.name == "sse":
            return SseEncoder()
        return OpenAIEncoder(ChunkContext(f"chatcmpl-{sid}", "m", 1, include_usage=True))

    def decoder(self):
        return NDJSONDecoder() if self.name == "ndjson" else SSEDecoder()

    def units(self, items) -> list[tuple[int, Any]]:
        """(seq, payload) for the items that are events (not heartbeats, not [DONE])."""
        if self.name == "ndjson":
            return [(item["seq"], item) for item in items if "seq" in item]
        return [(int(m.id), json.loads(m.data)) for m in items if m.id is not None and m.data != "[DONE]"]

    def message(self, payloads: list[Any]) -> Any:
        if self.name == "openai":
            state = ChatCompletionStreamState()
            for payload in payloads:
                # As the SDK's Stream builds chunks: not validated (its chunk
                # types do not know `custom` tool calls yet; its accumulator does).
                # A copy: the accumulator merges into the dicts of unknown fields in place.
                state.handle_chunk(construct_type(type_=ChatCompletionChunk, value=copy.deepcopy(payload)))
            # The accumulated snapshot get_final_completion() returns, before
            # the parsing step that (in this SDK) cannot take a custom tool call.
            snapshot = state.current_completion_snapshot
            final = snapshot.model_dump()
            choice = final["choices"][0]
            usage = snapshot.usage and snapshot.usage.model_dump(exclude_none=True)
            return (choice["message"], choice["finish_reason"], choice.get("logprobs"), usage,
                    final.get("system_fingerprint"))
        folded = MessageFold()
        for payload in payloads:
            folded.add(payload["type"], {k: v for k, v in payload.items() if k not in ("seq", "type")})
        return folded.message(), folded.finish_reason, folded.logprobs, folded.usage, folded.info


def test_the_sdks_chunk_builder_is_the_one_used_here():
    # A private SDK function (what its Stream calls): fail loudly if it changes.
    assert list(inspect.signature(construct_type).parameters) == ["value", "type_", "metadata"]


def response(store, hub, sid: str, after: int, fmt: Format) -> bytes:
    last = int(store.meta(sid).last_seq)
    return b"".join(follow(store, hub, sid, after, fmt.encoder(sid), 5.0, ended=after >= last))


@pytest.mark.parametrize("fmt", [Format("ndjson"), Format("sse"), Format("openai")], ids=lambda f: f.name)
@pytest.mark.parametrize("events", [TOOL_CALLS, REASONING], ids=["tool_calls", "reasoning"])
def test_a_cut_anywhere_resumes_to_the_identical_message(store, hub, fmt, events):
    sid = written(store, events)
    whole = response(store, hub, sid, 0, fmt)
    decoder = fmt.decoder()
    seen: list[tuple[int, Any]] = []
    decoded_at: list[int] = []  # how many units the client holds after each byte
    for i in range(len(whole)):
        seen += fmt.units(decoder.feed(whole[i:i + 1]))
        decoded_at.append(len(seen))
    assert fmt.units(fmt.decoder().feed(whole)) == seen
    expected = fmt.message([payload for _, payload in seen])
    # Whole, every format holds the message spool's fold makes of the stored events.
    folded = fold(store.read(sid, 0))
    if fmt.name == "openai":
        assert sdk_message(expected[0]) == folded.message(reasoning_key="reasoning_content")
        assert expected[4] == DONE_INFO["system_fingerprint"]
    else:
        assert expected[0] == folded.message()
    assert (expected[1], expected[3]) == (folded.finish_reason, USAGE)
    resumed: dict[int, list[tuple[int, Any]]] = {}
    # What the client holds depends only on how many units it decoded before
    # the cut: one check per distinct count covers every byte offset.
    cuts = sorted({0, *decoded_at})
    assert cuts == list(range(len(seen) + 1))
    for cut in cuts:
        held = seen[:cut]
        after = held[-1][0] if held else 0
        if after not in resumed:
            resumed[after] = fmt.units(fmt.decoder().feed(response(store, hub, sid, after, fmt)))
            assert all(seq > after for seq, _ in resumed[after])
        payloads = [payload for _, payload in held + resumed[after]]
        if fmt.name == "openai" and held and held[-1][0] == seen[-1][0] and held != seen:
            # Cut between the frames of the final event (they share its seq):
            # the message is whole, the trailing usage chunk is not resent.
            assert fmt.message(payloads)[:3] == expected[:3], cut
            continue
        assert fmt.message(payloads) == expected, cut
    assert len(resumed) == len({seq for seq, _ in seen}) + 1  # a resume from every seq, and from 0


def sdk_message(message: dict[str, Any]) -> dict[str, Any]:
    """The SDK's accumulated message in the fold's shape."""
    message = copy.deepcopy(message)
    out = {"role": "assistant", "content": message["content"], "refusal": message["refusal"]}
    if message.get("tool_calls"):
        out["tool_calls"] = [{k: v for k, v in call.items() if k != "index" and v is not None}
                             for call in message["tool_calls"]]
        for call in out["tool_calls"]:
            (call.get("function") or {}).pop("parsed_arguments", None)
    if message.get("reasoning_content") is not None:
        out["reasoning_content"] = message["reasoning_content"]
    return out
