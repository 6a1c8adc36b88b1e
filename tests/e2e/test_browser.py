"""The reference web client against a real stack, in a real browser.

Needs frontend/dist (`cd frontend && npm ci && npm run build`), Debian's
/usr/bin/chromium and a Redis; without them the tests are skipped, unless
SPOOL_TEST_STRICT=1, where that is a failure.
"""

from __future__ import annotations

import json
import re

import pytest
import requests
from playwright.sync_api import expect

from mock_upstream import expected_text
from tests.e2e.browser_helpers import DIST, Chat, DropProxy, require, requests_to
from tests.stack import start_stack, wait_until

TOKENS = 60
# 3 s per answer: long enough to act in the middle of one.
MOCK_ARGS = ["--ttft-ms", "100", "--tokens-per-second", "20", "--tokens", str(TOKENS)]


@pytest.fixture(scope="module")
def web_stack(redis_url, tmp_path_factory):
    """One stack serving the built frontend; each test uses prompts of its own."""
    require((DIST / "index.html").is_file(), f"{DIST} is not built: cd frontend && npm ci && npm run build")
    stack = start_stack(
        redis_url,
        static_dir=str(DIST.relative_to(DIST.parents[1])),
        mock_args=MOCK_ARGS,
        log_dir=tmp_path_factory.mktemp("web-stack"),
    )
    yield stack
    stack.stop()


@pytest.fixture
def chat(context) -> Chat:
    chat = Chat(context.new_page())
    chat.page.goto("/")
    return chat


def upstream_requests(stack, prompt: str) -> list[dict]:
    return [r for r in stack.mock_stats() if r["prompt"] == prompt]


def test_answer_streams_and_matches(chat, web_stack):
    prompt = "stream me an answer"
    expected = expected_text(prompt, TOKENS)
    chat.send(prompt)

    chat.wait_partial(expected)
    assert chat.wait_state("done") == "done"
    assert chat.raw_answer() == expected
    expect(chat.page.get_by_test_id("answer")).to_have_text(expected)
    assert re.fullmatch(rf"done · stop · \d+ prompt \+ {TOKENS} completion tokens", chat.status())
    assert "streaming" in chat.statuses()
    assert re.search(r"\?stream=[A-Za-z0-9_-]{22}$", chat.page.url)
    chat.screenshot("browser-answer-done")


def test_network_drop_resumes_exactly(browser, web_stack):
    prompt = "survive a network drop"
    expected = expected_text(prompt, TOKENS)
    proxy = DropProxy(web_stack.base_url)
    context = browser.new_context(base_url=proxy.url)
    try:
        chat = Chat(context.new_page())
        chat.page.goto("/")
        resumes = requests_to(chat.page, "/events?after=")
        chat.send(prompt)

        chat.wait_partial(expected, min_chars=20)
        proxy.down()
        chat.wait_attempt(2)  # the first reconnect failed too: backoff, then again
        proxy.up()
        chat.wait_state("done")

        assert chat.raw_answer() == expected
        resumed = [s for s in chat.statuses() if "resumed at #" in s]
        assert resumed, chat.statuses()
        after = int(resumed[0].rsplit("#", 1)[1])
        assert after > 1
        assert f"after={after}" in resumes[-1].url
    finally:
        context.close()
        proxy.close()
    # The drop cost the reader its connection, not the worker its generation.
    assert [r["finished"] for r in upstream_requests(web_stack, prompt)] == [True]


def test_reload_mid_answer_completes(chat, web_stack):
    prompt = "survive a reload"
    expected = expected_text(prompt, TOKENS)
    chat.send(prompt)
    partial = chat.wait_partial(expected, min_chars=20)

    resumes = requests_to(chat.page, "/events?after=")
    chat.page.reload()
    chat.wait_state("done")

    assert chat.raw_answer() == expected
    expect(chat.page.get_by_test_id("turn").locator(".prompt")).to_have_text(prompt)
    # sessionStorage kept the rendered answer, so the reload asks only for the rest.
    after = int(resumes[0].url.rsplit("after=", 1)[1])
    assert after >= len(partial.split(" ")) > 0
    assert len(upstream_requests(web_stack, prompt)) == 1


def test_second_tab_follows_live(chat, context):
    prompt = "two tabs, one answer"
    expected = expected_text(prompt, TOKENS)
    chat.send(prompt)
    chat.wait_partial(expected)

    second = Chat(context.new_page())
    second.page.goto(chat.page.url)
    second.wait_partial(expected)
    second.wait_state("done")
    chat.wait_state("done")

    assert second.raw_answer() == expected
    assert chat.raw_answer() == expected


def test_stop_cancels_on_the_server(chat, web_stack):
    prompt = "stop me midway"
    expected = expected_text(prompt, TOKENS)
    cancels = requests_to(chat.page, "/cancel")
    chat.send(prompt)
    chat.wait_partial(expected, min_chars=10)

    chat.page.get_by_test_id("stop").click()
    chat.wait_state("cancelled")

    assert chat.status() == "cancelled"
    assert [r.method for r in cancels] == ["POST"]
    partial = chat.raw_answer()
    assert expected.startswith(partial) and len(partial) < len(expected)
    wait_until(lambda: upstream_requests(web_stack, prompt)[0]["aborted"], 10, "the mock to see the abort")
    assert upstream_requests(web_stack, prompt)[0]["tokens_sent"] < TOKENS
    expect(chat.page.get_by_test_id("stop")).to_have_count(0)


def test_upstream_error_is_shown(chat, web_stack):
    chat.send("fail please", model="mock-error")
    chat.wait_state("error")

    stream_id = chat.page.url.rsplit("stream=", 1)[1]
    error = requests.get(f"{web_stack.base_url}/v1/streams/{stream_id}", timeout=5).json()["error"]
    assert error["code"] == "upstream_error"
    assert chat.status() == f"error · {error['code']}: {error['message']}"
    chat.screenshot("browser-upstream-error")


def test_follow_up_sends_previous_turns(chat):
    first, second = "first question", "second question"
    posts = requests_to(chat.page, "/v1/streams")
    chat.send(first)
    chat.wait_state("done")
    chat.send(second)
    chat.wait_state("done")

    assert chat.raw_answer() == expected_text(second, TOKENS)
    bodies = [r.post_data_json for r in posts if r.method == "POST"]
    assert bodies[1]["messages"] == [
        {"role": "user", "content": first},
        {"role": "assistant", "content": expected_text(first, TOKENS)},
        {"role": "user", "content": second},
    ]
    expect(chat.page.get_by_test_id("answer")).to_have_count(2)
    chat.screenshot("browser-two-turns")


def test_model_html_is_not_rendered(chat):
    """Markdown renders; HTML and script URLs from the model never reach the DOM."""
    text = '**bold** <img src=x onerror="window.__pwned=1"> <script>window.__pwned=1</script> [a](javascript:window.__pwned=1)'
    events = [
        {"seq": 1, "type": "start", "id": "A" * 22, "model": "m", "created": 0},
        {"seq": 2, "type": "delta", "text": text},
        {"seq": 3, "type": "done", "finish_reason": "stop", "usage": None},
    ]
    chat.page.route(
        "**/v1/streams",
        lambda route: route.fulfill(
            status=200,
            headers={"Content-Type": "application/x-ndjson", "X-Stream-Id": "A" * 22},
            body="".join(json.dumps(e) + "\n" for e in events),
        ),
    )
    chat.send("anything")
    chat.wait_state("done")

    answer = chat.page.get_by_test_id("answer")
    assert chat.raw_answer() == text
    expect(answer.locator("strong")).to_have_text("bold")
    expect(answer.locator("img, script")).to_have_count(0)
    expect(answer.locator('a[href^="javascript"]')).to_have_count(0)
    expect(answer).to_contain_text("<img src=x")
    assert chat.page.evaluate("window.__pwned") is None


def test_reasoning_shows_collapsed_and_tool_calls_show_as_they_stream(chat, context, web_stack):
    prompt = "reason it out"
    chat.send(prompt, model="mock-reasoning")
    reasoning = chat.page.get_by_test_id("reasoning")
    expect(reasoning).to_be_visible()
    assert reasoning.get_attribute("open") is None  # collapsed
    chat.wait_state("done")
    assert chat.raw_answer() == expected_text(prompt, TOKENS)
    reasoning.locator("summary").click()
    expect(reasoning.locator("p")).not_to_be_empty()
    # A tool call (the page offers no tools: the stream is made by an API client and followed here).
    tool = {"type": "function", "function": {"name": "get_weather", "parameters": {
        "type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}}
    body = {"messages": [{"role": "user", "content": "call a tool"}], "model": "mock", "tools": [tool]}
    created = requests.post(f"{web_stack.base_url}/v1/streams", json=body, timeout=30).json()
    page = context.new_page()
    page.goto(f"/?stream={created['id']}")
    call = page.get_by_test_id("tool-call")
    expect(call).to_have_attribute("data-name", "get_weather")
    expect(call.locator("pre")).to_have_text(re.compile(r'^\{"city": ".+"\}$'))
