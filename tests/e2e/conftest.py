"""Fixtures of the browser tests: one Chromium per module, one context per
test on the module's `web_stack` (each module serves its own page)."""

from __future__ import annotations

import pytest
from playwright.sync_api import sync_playwright

from tests.e2e.browser_helpers import CHROMIUM, launch, require


@pytest.fixture(scope="module")
def browser():
    require(CHROMIUM.exists(), f"no {CHROMIUM}: apt-get install -y chromium")
    with sync_playwright() as playwright:
        browser = launch(playwright)
        yield browser
        browser.close()


@pytest.fixture
def context(browser, web_stack):
    context = browser.new_context(base_url=web_stack.base_url)
    yield context
    context.close()
