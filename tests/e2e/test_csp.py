"""The built page works under the gateway's Content-Security-Policy: a full
answer streams in a real browser and the browser reports no CSP violation."""

from __future__ import annotations

import pytest
from playwright.sync_api import sync_playwright

from gateway.static import CONTENT_SECURITY_POLICY
from mock_upstream import expected_text
from tests.e2e.browser_helpers import CHROMIUM, DIST, Chat, launch, require
from tests.stack import start_stack

TOKENS = 20
# Recorded before any page script runs, so nothing the page does is missed.
RECORD_VIOLATIONS = """
window.__cspViolations = [];
document.addEventListener("securitypolicyviolation",
  (e) => window.__cspViolations.push(e.violatedDirective + " " + e.blockedURI));
"""


@pytest.fixture(scope="module")
def csp_stack(redis_url, tmp_path_factory):
    require((DIST / "index.html").is_file(), f"{DIST} is not built: cd frontend && npm ci && npm run build")
    require(CHROMIUM.exists(), f"no {CHROMIUM}: apt-get install -y chromium")
    stack = start_stack(redis_url, static_dir=str(DIST.relative_to(DIST.parents[1])),
                        mock_args=["--ttft-ms", "20", "--tokens-per-second", "200", "--tokens", str(TOKENS)],
                        log_dir=tmp_path_factory.mktemp("csp-stack"))
    yield stack
    stack.stop()


def test_page_streams_an_answer_with_no_csp_violation(csp_stack):
    with sync_playwright() as playwright:
        browser = launch(playwright)
        try:
            context = browser.new_context(base_url=csp_stack.base_url)
            context.add_init_script(RECORD_VIOLATIONS)
            page = context.new_page()
            console_errors: list[str] = []
            page.on("console", lambda m: console_errors.append(m.text) if m.type == "error" else None)
            response = page.goto("/")
            assert response.headers["content-security-policy"] == CONTENT_SECURITY_POLICY
            chat = Chat(page)
            prompt = "answer under a strict policy"
            chat.send(prompt)
            assert chat.wait_state("done") == "done"
            assert chat.raw_answer() == expected_text(prompt, TOKENS)
            assert page.evaluate("window.__cspViolations") == []
            assert not [e for e in console_errors if "Content Security Policy" in e]
            # The policy bites, and the recorder sees it: an injected inline script is blocked.
            page.evaluate("""() => { const s = document.createElement("script");
                                     s.textContent = "window.__inlineRan = true";
                                     document.head.appendChild(s); }""")
            assert page.evaluate("window.__inlineRan === undefined")
            page.wait_for_function("window.__cspViolations.length > 0")
        finally:
            browser.close()
