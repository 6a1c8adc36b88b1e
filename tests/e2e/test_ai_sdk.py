"""The AI SDK example (examples/ai-sdk: `useChat` + `DefaultChatTransport`,
`resume: true`) against a real stack, in Chromium.

Needs examples/ai-sdk/dist (`make ai-sdk-example`), Debian's /usr/bin/chromium
and a Redis; without them the tests fail under SPOOL_TEST_STRICT=1.
The page marks what tests read with data-testid: `status` (data-state is
useChat's status), `message-user` / `message-assistant` (data-id: the message
id, which spool sets to the stream id), `text-part` (data-state), `tool-part`.
"""

from __future__ import annotations

import json

import pytest
import requests
from playwright.sync_api import Page, expect

from mock_upstream import tool_arguments
from mock_upstream import expected_text
from tests.e2e.browser_helpers import ROOT, TIMEOUT_MS, require
from tests.stack import start_stack, wait_until

DIST = ROOT / "examples" / "ai-sdk" / "dist"
TOKENS = 60
# 3 s per answer: long enough to act in the middle of one.
# The tool examples/ai-sdk offers with ?tools=1.
TOOL = {"type": "function", "function": {"name": "get_weather", "parameters": {
    "type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}}
MOCK_ARGS = ["--ttft-ms", "100", "--tokens-per-second", "20", "--tokens", str(TOKENS)]


@pytest.fixture(scope="module")
def web_stack(redis_url, tmp_path_factory):
    """One stack serving the built example; each test uses a chat and prompts of its own."""
    require((DIST / "index.html").is_file(), f"{DIST} is not built: make ai-sdk-example")
    stack = start_stack(redis_url, static_dir=str(DIST.relative_to(ROOT)), mock_args=MOCK_ARGS,
                        log_dir=tmp_path_factory.mktemp("ai-sdk-stack"))
    yield stack
    stack.stop()


def open_chat(context, query: str = "") -> Page:
    page = context.new_page()
    page.set_default_timeout(TIMEOUT_MS)
    page.goto("/" + query)
    expect(page.get_by_test_id("status")).to_have_attribute("data-state", "ready")
    return page


def send(page: Page, prompt: str, model: str | None = None) -> None:
    if model:
        page.get_by_test_id("model").fill(model)
    page.get_by_test_id("prompt").fill(prompt)
    page.get_by_test_id("send").click()


def wait_partial(page: Page, expected: str) -> str:
    """Wait until the answer shows some (not necessarily all) of `expected`; returns it."""
    handle = page.wait_for_function(
        """expected => {
            const text = document.querySelector('[data-testid="message-assistant"] [data-testid="text-part"]')
                ?.textContent;
            return text && expected.startsWith(text) && text;
        }""",
        arg=expected,
    )
    return handle.json_value()


def wait_answered(page: Page, expected: str) -> None:
    """The one assistant message holds exactly `expected`, its part done, useChat ready."""
    assistant = page.get_by_test_id("message-assistant")
    expect(assistant.get_by_test_id("text-part")).to_have_attribute("data-state", "done")
    expect(page.get_by_test_id("status")).to_have_attribute("data-state", "ready")
    expect(assistant).to_have_count(1)
    expect(assistant.get_by_test_id("text-part")).to_have_count(1)
    expect(assistant.get_by_test_id("text-part")).to_have_text(expected)


def test_an_answer_streams_exactly(context, web_stack):
    prompt = "ai sdk exact"
    page = open_chat(context)
    send(page, prompt)
    wait_partial(page, expected_text(prompt, TOKENS))
    wait_answered(page, expected_text(prompt, TOKENS))
    expect(page.get_by_test_id("message-user")).to_have_text("user" + prompt)
    stream_id = page.get_by_test_id("message-assistant").get_attribute("data-id")
    assert requests.get(f"{web_stack.base_url}/v1/streams/{stream_id}", timeout=5).json()["status"] == "done"


def test_reload_mid_answer_resumes_once(context, web_stack):
    prompt = "ai sdk reload"
    expected = expected_text(prompt, TOKENS)
    page = open_chat(context)
    send(page, prompt)
    partial = wait_partial(page, expected)
    assert partial != expected
    page.reload()
    wait_answered(page, expected)
    expect(page.get_by_test_id("message-user")).to_have_count(1)
    assert [r["finished"] for r in web_stack.mock_stats() if r["prompt"] == prompt] == [True]


def test_stop_ends_the_answer_server_side(context, web_stack):
    prompt = "ai sdk stop"
    page = open_chat(context)
    send(page, prompt, model="mock-stall")  # half the answer, then silence until cancelled
    wait_partial(page, expected_text(prompt, TOKENS))
    page.get_by_test_id("stop").click()
    expect(page.get_by_test_id("status")).to_have_attribute("data-state", "ready")
    expect(page.get_by_test_id("message-assistant").get_by_test_id("text-part")).to_have_attribute(
        "data-state", "done")
    stream_id = page.get_by_test_id("message-assistant").get_attribute("data-id")
    assert requests.get(f"{web_stack.base_url}/v1/streams/{stream_id}", timeout=5).json()["status"] == "cancelled"
    upstream = [r for r in web_stack.mock_stats() if r["prompt"] == prompt]
    assert len(upstream) == 1
    # The mock sees the closed connection a moment after the worker ended the
    # stream (another process: nothing to await but its report).
    wait_until(lambda: [r for r in web_stack.mock_stats() if r["prompt"] == prompt][0]["aborted"], 10,
               "the mock to see the upstream call aborted")


def test_a_second_tab_follows(context, web_stack):
    prompt = "ai sdk two tabs"
    expected = expected_text(prompt, TOKENS)
    first = open_chat(context)
    send(first, prompt)
    wait_partial(first, expected)
    second = open_chat(context, "?" + first.url.split("?", 1)[1])  # the same chat
    for page in (first, second):
        wait_answered(page, expected)
    assert len([r for r in web_stack.mock_stats() if r["prompt"] == prompt]) == 1


def test_a_tool_call_shows_as_a_tool_part(context, web_stack):
    prompt = "ai sdk weather in Oslo"
    page = open_chat(context, "?tools=1")
    send(page, prompt)
    expect(page.get_by_test_id("message-user")).to_have_count(1)  # sent: the status has left `ready`
    tool = page.get_by_test_id("tool-part")
    # The mock calls the offered tool with schema-valid arguments in fragments;
    # useChat shows the call whole once its input is available.
    expect(tool).to_have_attribute("data-state", "input-available")
    expect(page.get_by_test_id("status")).to_have_attribute("data-state", "ready")
    expect(page.get_by_test_id("error")).to_have_count(0)
    assert tool.get_attribute("data-tool") == "get_weather"
    arguments = tool_arguments(TOOL, prompt)
    shown = json.dumps(json.loads(arguments), separators=(",", ":"), ensure_ascii=False)  # JSON.stringify
    assert tool.inner_text() == f"get_weather({shown})"
    stream_id = page.get_by_test_id("message-assistant").get_attribute("data-id")
    snapshot = requests.get(f"{web_stack.base_url}/v1/streams/{stream_id}", timeout=5).json()
    assert snapshot["finish_reason"] == "tool_calls"
    assert [c["function"] for c in snapshot["message"]["tool_calls"]] == [
        {"name": "get_weather", "arguments": arguments}]
