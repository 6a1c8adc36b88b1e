"""The page under `spool dev` says its answers come from the built-in mock;
on a stack with a real model configured it says nothing."""

from __future__ import annotations

import pytest
from playwright.sync_api import expect, sync_playwright

from tests.e2e.browser_helpers import CHROMIUM, DIST, TIMEOUT_MS, launch, require
from tests.integration.test_dev import START_SECONDS, Dev
from tests.stack import free_port, start_stack


@pytest.fixture(scope="module")
def browser():
    require(CHROMIUM.exists(), f"no {CHROMIUM}: apt-get install -y chromium")
    require((DIST / "index.html").is_file(), f"{DIST} is not built: make frontend")
    with sync_playwright() as playwright:
        browser = launch(playwright)
        yield browser
        browser.close()


@pytest.mark.timeout(START_SECONDS + 60)
def test_spool_dev_page_names_the_mock(browser, tmp_path):
    dev = Dev(free_port(), tmp_path / "dev.log")
    try:
        dev.wait_running()
        page = browser.new_page(base_url=dev.url)
        page.set_default_timeout(TIMEOUT_MS)
        page.goto("/")
        expect(page.get_by_test_id("mock-notice")).to_contain_text("built-in mock model")
        page.close()
    finally:
        dev.stop()


def test_a_stack_without_the_mock_flag_shows_no_notice(browser, redis_url, tmp_path):
    stack = start_stack(redis_url, static_dir=str(DIST.relative_to(DIST.parents[1])), log_dir=tmp_path)
    try:
        page = browser.new_page(base_url=stack.base_url)
        page.set_default_timeout(TIMEOUT_MS)
        with page.expect_response("**/upstream") as answer:
            page.goto("/")
        assert answer.value.json() == {"mock": False}
        expect(page.get_by_test_id("prompt")).to_be_visible()
        expect(page.get_by_test_id("mock-notice")).to_have_count(0)
        page.close()
    finally:
        stack.stop()
