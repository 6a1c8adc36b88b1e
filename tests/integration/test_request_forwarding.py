"""Whole requests through a real stack (gateway, Redis, worker) to an upstream
that records what it received, and to a third-party OpenAI-compatible server
(fakellm, from PyPI): every parameter arrives unchanged, the official SDK's
tools / response_format / developer messages are accepted, and an upstream's
refusal reaches the client with its own message and nothing of the key."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import openai
import pytest
import requests

from tests.capture_upstream import MESSAGES, PARAMS, WEATHER_TOOL, CaptureUpstream
from tests.client import post_stream, read
from tests.stack import free_port, http_ok, wait_until

pytestmark = pytest.mark.integration

KEY = "sk-spool-integration-secret-0123456789"


@pytest.fixture(scope="module")
def capture():
    with CaptureUpstream() as server:
        yield server


@pytest.fixture(scope="module")
def stack(capture, stack_factory_module):
    return stack_factory_module(env={"OPENAI_BASE_URL": capture.url, "OPENAI_API_KEY": KEY})


@pytest.fixture(scope="module")
def stack_factory_module(redis_url, tmp_path_factory):
    from tests.stack import start_stack

    stacks = []

    def factory(**kwargs):
        stack = start_stack(redis_url, log_dir=tmp_path_factory.mktemp("stack"), **kwargs)
        stacks.append(stack)
        return stack

    yield factory
    for stack in stacks:
        stack.stop()


def sdk_for(base_url: str) -> openai.OpenAI:
    return openai.OpenAI(base_url=base_url + "/v1", api_key="unused", max_retries=0, timeout=30)


def test_the_sdk_sends_every_parameter_and_the_upstream_gets_it_unchanged(stack, capture):
    known = {k: v for k, v in PARAMS.items() if k != "future_param"}
    capture.requests.clear()
    result = sdk_for(stack.base_url).chat.completions.create(
        model="gpt-test", messages=MESSAGES, extra_body={"future_param": PARAMS["future_param"]}, **known)
    assert result.choices[0].message.content == "Hello" and result.choices[0].finish_reason == "stop"
    (received,) = capture.requests
    expected = {"model": "gpt-test", "messages": MESSAGES, **PARAMS,
                "stream": True, "stream_options": {"include_usage": True}}
    assert json.dumps(received, sort_keys=True) == json.dumps(expected, sort_keys=True)


def test_a_native_client_sends_the_same_body(stack, capture):
    capture.requests.clear()
    received = read(post_stream(stack.base_url, {"model": "gpt-test", "messages": MESSAGES, **PARAMS}))
    assert received.text == "Hello" and received.terminal["type"] == "done"
    assert {k: v for k, v in capture.requests[0].items() if k not in ("stream", "stream_options")} == {
        "model": "gpt-test", "messages": MESSAGES, **PARAMS}


def test_the_sdks_streaming_call_with_tools_and_a_developer_message(stack, capture):
    capture.requests.clear()
    chunks = list(sdk_for(stack.base_url).chat.completions.create(
        model="gpt-test", stream=True, tools=[WEATHER_TOOL], tool_choice="auto",
        response_format={"type": "json_object"}, max_completion_tokens=20,
        messages=[{"role": "developer", "content": "Reply in JSON."}, {"role": "user", "content": "weather?"}]))
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == "Hello"
    sent = capture.requests[0]
    assert sent["messages"][0] == {"role": "developer", "content": "Reply in JSON."}
    assert sent["max_completion_tokens"] == 20 and "max_tokens" not in sent and sent["tools"] == [WEATHER_TOOL]


def test_an_upstream_refusal_reaches_the_client_without_the_key(stack, capture):
    capture.fail(400, {"error": {
        "message": f"Invalid schema for function 'get_weather' (request by {KEY})",
        "type": "invalid_request_error", "param": "tools[0].function.parameters",
        "code": "invalid_function_parameters"}})
    try:
        received = read(post_stream(stack.base_url, {"messages": MESSAGES[:1], "tools": [WEATHER_TOOL]}))
        error = received.terminal
        assert error["type"] == "error" and error["code"] == "upstream_rejected"
        assert error["status"] == 400 and error["param"] == "tools[0].function.parameters"
        assert error["upstream_code"] == "invalid_function_parameters"
        assert error["message"] == "Invalid schema for function 'get_weather' (request by [redacted])"
        with pytest.raises(openai.BadRequestError) as info:
            sdk_for(stack.base_url).chat.completions.create(model="gpt-test", messages=MESSAGES[:1],
                                                           tools=[WEATHER_TOOL])
        assert "Invalid schema for function 'get_weather'" in info.value.message
        snapshot = requests.get(f"{stack.base_url}/v1/streams/{received.stream_id}", timeout=10).text
        assert KEY not in json.dumps(received.events) + snapshot + info.value.message
        assert KEY not in stack.logs()
    finally:
        capture.answer()


FAKELLM_CONFIG = """\
version: 1
rules:
  - name: weather_tool_call
    when:
      tools_include: get_weather
      messages_contain: "call the tool"
    respond:
      tool_calls:
        - name: get_weather
          arguments: {city: "Paris"}
  - name: weather_tool_offered
    when:
      tools_include: get_weather
    respond:
      content: "The weather tool was offered to me."
  - name: plain
    respond:
      content: "Hello from fakellm, a third-party mock."
"""


@pytest.fixture(scope="module")
def fakellm(tmp_path_factory):
    """fakellm (PyPI) serving on a free loopback port."""
    directory = Path(tmp_path_factory.mktemp("fakellm"))
    (directory / "fakellm.yaml").write_text(FAKELLM_CONFIG)
    port = free_port()
    binary = shutil.which("fakellm") or str(Path(sys.executable).with_name("fakellm"))
    log = open(directory / "fakellm.log", "wb")
    process = subprocess.Popen([binary, "serve", "--host", "127.0.0.1", "--port", str(port), "--config",
                                str(directory / "fakellm.yaml")], stdout=log, stderr=subprocess.STDOUT, cwd=directory)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_until(lambda: process.poll() is None and http_ok(url + "/_fakellm/stats"), 30, "fakellm to serve")
        yield url
    finally:
        process.terminate()
        process.wait(timeout=20)
        log.close()


@pytest.fixture(scope="module")
def fakellm_stack(fakellm, stack_factory_module):
    return stack_factory_module(env={"OPENAI_BASE_URL": fakellm + "/v1"})


def matched_rules(fakellm: str) -> list[str]:
    return [r["matched_rule"] for r in requests.get(fakellm + "/_fakellm/stats", timeout=10).json()["recent"]]


def test_a_third_party_server_as_upstream(fakellm_stack, fakellm):
    sdk = sdk_for(fakellm_stack.base_url)
    result = sdk.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": "hi"}])
    assert result.choices[0].message.content == "Hello from fakellm, a third-party mock."
    # The tools reached fakellm: its rule on them fired.
    chunks = list(sdk.chat.completions.create(
        model="gpt-4o-mini", stream=True, tools=[WEATHER_TOOL], parallel_tool_calls=False,
        messages=[{"role": "developer", "content": "Be brief."}, {"role": "user", "content": "weather?"}]))
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == "The weather tool was offered to me."
    assert matched_rules(fakellm)[0] == "weather_tool_offered"
    # A tool call ends the answer with finish_reason tool_calls.
    received = read(post_stream(fakellm_stack.base_url, {
        "messages": [{"role": "user", "content": "Please call the tool"}], "tools": [WEATHER_TOOL]}))
    assert received.terminal["type"] == "done" and received.terminal["finish_reason"] == "tool_calls"
    assert matched_rules(fakellm)[0] == "weather_tool_call"
