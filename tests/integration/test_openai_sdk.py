"""The official openai Python SDK against a real stack, unchanged except base_url."""

from __future__ import annotations

import json

import openai
import pytest
import requests

from mock_upstream import expected_text
from spool.decoders import SSEDecoder

TOKENS = 40  # the `stack` fixture's answer length


@pytest.fixture
def sdk(stack) -> openai.OpenAI:
    return openai.OpenAI(base_url=stack.base_url + "/v1", api_key="unused", max_retries=0, timeout=30)


def ask(prompt: str) -> list[dict[str, str]]:
    return [{"role": "user", "content": prompt}]


def test_streaming_with_usage(sdk):
    chunks = list(sdk.chat.completions.create(
        model="mock", messages=ask("sdk stream"), stream=True, stream_options={"include_usage": True},
    ))
    assert chunks[0].choices[0].delta.role == "assistant"
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == expected_text("sdk stream", TOKENS)
    finals = [c for c in chunks if c.choices and c.choices[0].finish_reason]
    assert [c.choices[0].finish_reason for c in finals] == ["stop"]
    assert chunks[-1].choices == [] and chunks[-1].usage.completion_tokens == TOKENS
    assert len({c.id for c in chunks}) == 1 and chunks[0].id.startswith("chatcmpl-")
    assert all(c.model == "mock" and c.object == "chat.completion.chunk" for c in chunks)


def test_streaming_without_usage_has_no_usage_chunk(sdk):
    chunks = list(sdk.chat.completions.create(model="mock", messages=ask("no usage"), stream=True))
    assert all(c.choices for c in chunks)
    assert chunks[-1].choices[0].finish_reason == "stop"


def test_non_streaming(sdk):
    result = sdk.chat.completions.create(model="mock", messages=ask("sdk whole"), max_tokens=7)
    assert result.object == "chat.completion"
    assert result.choices[0].message.content == expected_text("sdk whole", 7)
    assert result.choices[0].finish_reason == "length"
    assert result.usage.completion_tokens == 7


def test_validation_error_is_a_bad_request(sdk):
    with pytest.raises(openai.BadRequestError) as info:
        sdk.chat.completions.create(model="mock", messages=ask("x"), temperature=5)
    assert info.value.code == "invalid_request"
    assert info.value.param == "temperature"
    assert info.value.type == "invalid_request_error"
    with pytest.raises(openai.BadRequestError) as info:
        sdk.chat.completions.create(model="mock", messages=ask("x"), tools=[{"type": "function", "function": {}}])
    assert info.value.param == "tools[0].function.name"


def test_upstream_error_non_streaming_maps_status(sdk):
    with pytest.raises(openai.InternalServerError) as info:  # 502
        sdk.chat.completions.create(model="mock-error", messages=ask("boom"))
    assert info.value.status_code == 502 and info.value.code == "upstream_error"


def test_error_event_mid_stream_raises(sdk):
    stream = sdk.chat.completions.create(model="mock-truncate", messages=ask("cut"), stream=True)
    received = []
    with pytest.raises(openai.APIError) as info:
        for chunk in stream:
            received.append(chunk)
    assert info.value.code == "upstream_truncated"
    text = "".join(c.choices[0].delta.content or "" for c in received)
    assert text and expected_text("cut", TOKENS).startswith(text)


def test_models_lists_the_default(sdk):
    assert [m.id for m in sdk.models.list()] == ["mock"]


def test_dropped_openai_stream_resumes_by_seq(stack, sdk):
    raw = sdk.chat.completions.with_raw_response.create(model="mock", messages=ask("resume me"), stream=True)
    stream_id = raw.headers["X-Stream-Id"]
    chunks = []
    for chunk in raw.parse():
        chunks.append(chunk)
        if len(chunks) == 5:
            break  # the client drops the connection here
    assert chunks[0].id == f"chatcmpl-{stream_id}"
    # The role chunk is seq 1, so five chunks end at seq 5.
    response = requests.get(f"{stack.base_url}/v1/streams/{stream_id}/events",
                            params={"format": "openai"}, headers={"Last-Event-ID": "5"}, timeout=30)
    messages = SSEDecoder().feed(response.content)
    assert messages[-1].data == "[DONE]"
    assert int(messages[0].id) == 6
    rest = [json.loads(m.data) for m in messages[:-1]]
    text = "".join(c.choices[0].delta.content or "" for c in chunks[1:])
    text += "".join(r["choices"][0]["delta"].get("content", "") for r in rest if r["choices"])
    assert text == expected_text("resume me", TOKENS)


def test_cancel_mid_stream_raises_in_the_sdk(stack_factory):
    slow = stack_factory(mock_args=["--ttft-ms", "20", "--tokens-per-second", "20", "--tokens", "400"])
    sdk = openai.OpenAI(base_url=slow.base_url + "/v1", api_key="unused", max_retries=0, timeout=30)
    raw = sdk.chat.completions.with_raw_response.create(model="mock", messages=ask("cancel me"), stream=True)
    stream_id = raw.headers["X-Stream-Id"]
    chunks = iter(raw.parse())
    assert next(chunks).choices[0].delta.role == "assistant"
    cancel = requests.post(f"{slow.base_url}/v1/streams/{stream_id}/cancel", timeout=30)
    assert cancel.json()["status"] == "cancelled"
    with pytest.raises(openai.APIError) as info:
        for _ in chunks:
            pass
    assert info.value.code == "cancelled"
