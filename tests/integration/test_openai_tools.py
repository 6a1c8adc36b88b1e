"""Whole messages through spool with the official openai Python SDK: a tool
loop, reasoning and refusals give the SDK the same message through spool as
straight from the upstream, streamed and not; the snapshot holds it too."""

from __future__ import annotations

import json
from typing import Any

import openai
import pytest
import requests

from mock_upstream import REFUSAL, tool_arguments

TOOLS = [{"type": "function", "function": {
    "name": "get_weather",
    "description": "The weather in a city",
    "parameters": {"type": "object", "properties": {"city": {"type": "string"}, "days": {"type": "integer"}},
                   "required": ["city", "days"], "additionalProperties": False},
}}]


@pytest.fixture
def clients(stack) -> tuple[openai.OpenAI, openai.OpenAI]:
    """(through spool, straight to the upstream)."""
    def make(url: str) -> openai.OpenAI:
        return openai.OpenAI(base_url=url, api_key="unused", max_retries=0, timeout=30)
    return make(stack.base_url + "/v1"), make(stack.mock_url)


def streamed(client: openai.OpenAI, **params: Any):
    """The SDK's final completion of a streamed answer."""
    with client.chat.completions.stream(stream_options={"include_usage": True}, **params) as stream:
        for _ in stream:
            pass
        return stream.get_final_completion()


def same_message(a, b) -> None:
    """Two completions hold the same answer (ids and timestamps differ)."""
    assert a.choices[0].message.model_dump() == b.choices[0].message.model_dump()
    assert a.choices[0].finish_reason == b.choices[0].finish_reason
    assert a.usage == b.usage
    assert (a.model, a.system_fingerprint) == (b.model, b.system_fingerprint)


def test_a_tool_loop_streamed_gives_the_upstreams_own_message(clients):
    spool, upstream = clients
    messages: list[Any] = [{"role": "user", "content": "weather tool loop"}]
    first = streamed(spool, model="mock", messages=messages, tools=TOOLS)
    same_message(first, streamed(upstream, model="mock", messages=messages, tools=TOOLS))
    (call,) = first.choices[0].message.tool_calls
    assert first.choices[0].finish_reason == "tool_calls"
    assert call.function.name == "get_weather"
    assert json.loads(call.function.arguments) == json.loads(tool_arguments(TOOLS[0], "weather tool loop"))
    assert first.system_fingerprint == "fp_spool_mock"
    messages += [first.choices[0].message.model_dump(include={"role", "content", "tool_calls"}),
                 {"role": "tool", "tool_call_id": call.id, "content": "sunny, 21 °C"}]
    final = streamed(spool, model="mock", messages=messages, tools=TOOLS)
    same_message(final, streamed(upstream, model="mock", messages=messages, tools=TOOLS))
    assert final.choices[0].finish_reason == "stop" and final.choices[0].message.content
    assert not final.choices[0].message.tool_calls


def test_a_tool_call_without_streaming_is_the_upstreams(clients):
    spool, upstream = clients
    params = {"model": "mock", "messages": [{"role": "user", "content": "whole tool call"}], "tools": TOOLS}
    through = spool.chat.completions.create(**params)
    direct = upstream.chat.completions.create(**params)
    same_message(through, direct)
    assert through.choices[0].message.tool_calls[0].function.name == "get_weather"
    assert through.choices[0].message.content is None


@pytest.mark.parametrize("model", ["mock-reasoning", "mock-refusal"])
def test_reasoning_and_refusals_reach_the_sdk_whole(clients, model):
    spool, upstream = clients
    params = {"model": model, "messages": [{"role": "user", "content": f"{model} please"}]}
    through = streamed(spool, **params)
    same_message(through, streamed(upstream, **params))
    message = through.choices[0].message
    if model == "mock-refusal":
        assert message.refusal == REFUSAL and message.content is None
    else:
        assert message.reasoning_content and message.content
        assert through.usage.completion_tokens_details.reasoning_tokens == 8
    same_message(spool.chat.completions.create(**params), upstream.chat.completions.create(**params))


def test_the_snapshot_and_native_events_hold_the_tool_call(stack, clients):
    spool, _ = clients
    raw = spool.chat.completions.with_raw_response.create(
        model="mock", messages=[{"role": "user", "content": "snapshot tool"}], tools=TOOLS)
    stream_id = raw.headers["X-Stream-Id"]
    call = raw.parse().choices[0].message.tool_calls[0]
    snapshot = requests.get(f"{stack.base_url}/v1/streams/{stream_id}", timeout=30).json()
    assert snapshot["message"]["tool_calls"] == [call.model_dump()]
    assert snapshot["finish_reason"] == "tool_calls" and snapshot["text"] == ""
    assert snapshot["system_fingerprint"] == "fp_spool_mock" and snapshot["service_tier"] == "default"
    lines = requests.get(f"{stack.base_url}/v1/streams/{stream_id}/events", timeout=30).text.splitlines()
    types = [json.loads(line)["type"] for line in lines if '"seq"' in line]
    assert types[0] == "start" and types[1] == "tool_call" and types[-1] == "done"
    assert set(types[2:-1]) == {"tool_call_delta"}
