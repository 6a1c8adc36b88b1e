"""Driving the reference web client (frontend/) in Debian's Chromium.

The page marks what tests read with data-testid: `status` (with data-state),
`answer` (with data-raw, the text before Markdown), `prompt`, `model`, `send`,
`stop`. Tests wait on those, never on time.
"""

from __future__ import annotations

import socket
import struct
import threading
from pathlib import Path
from urllib.parse import urlsplit

from playwright.sync_api import Browser, Page, Playwright

from tests.conftest import require  # noqa: F401  (the e2e tests import it from here)

ROOT = Path(__file__).resolve().parents[2]
DIST = ROOT / "frontend" / "dist"
ARTIFACTS = ROOT / "test-artifacts"
CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
TIMEOUT_MS = 20_000

# Every text the status line shows, in order, so a test can see states that
# passed between two of its checks (e.g. "resumed at #12").
RECORD_STATUSES = """
window.__statuses = [];
new MutationObserver(() => {
  const text = document.querySelector('[data-testid="status"]')?.textContent;
  if (text && window.__statuses.at(-1) !== text) window.__statuses.push(text);
}).observe(document, { subtree: true, childList: true, characterData: true });
"""


def launch(playwright: Playwright) -> Browser:
    return playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)


class Chat:
    """One tab of the client."""

    def __init__(self, page: Page):
        self.page = page
        page.set_default_timeout(TIMEOUT_MS)
        page.add_init_script(RECORD_STATUSES)

    def send(self, prompt: str, model: str | None = None) -> None:
        if model is not None:
            self.page.get_by_test_id("model").fill(model)
        self.page.get_by_test_id("prompt").fill(prompt)
        self.page.get_by_test_id("send").click()

    def raw_answer(self) -> str:
        return self.page.get_by_test_id("answer").last.get_attribute("data-raw") or ""

    def status(self) -> str:
        return self.page.get_by_test_id("status").inner_text()

    def statuses(self) -> list[str]:
        return self.page.evaluate("window.__statuses")

    def wait_state(self, *states: str) -> str:
        """Wait until the status line is in one of `states`; returns it."""
        handle = self.page.wait_for_function(
            """states => {
                const state = document.querySelector('[data-testid="status"]')?.dataset.state;
                return states.includes(state) && state;
            }""",
            arg=list(states),
        )
        return handle.json_value()

    def wait_attempt(self, attempt: int) -> None:
        """Wait until the client is reconnecting for at least the `attempt`th time."""
        self.page.wait_for_function(
            """n => Number(document.querySelector('[data-testid="status"]')?.dataset.attempt) >= n""",
            arg=attempt,
        )

    def wait_partial(self, expected: str, min_chars: int = 1) -> str:
        """Wait until the last answer is a proper prefix of `expected`, at
        least `min_chars` long: the answer is arriving piece by piece."""
        handle = self.page.wait_for_function(
            """([expected, min]) => {
                const raw = [...document.querySelectorAll('[data-testid="answer"]')].at(-1)?.dataset.raw ?? "";
                return raw.length >= min && raw.length < expected.length && expected.startsWith(raw) && raw;
            }""",
            arg=[expected, min_chars],
        )
        return handle.json_value()

    def screenshot(self, name: str) -> Path:
        ARTIFACTS.mkdir(exist_ok=True)
        path = ARTIFACTS / f"{name}.png"
        self.page.screenshot(path=str(path), full_page=True)
        return path


def requests_to(page: Page, fragment: str) -> list:
    """Collects the page's requests whose URL contains `fragment` (from now on)."""
    seen: list = []
    page.on("request", lambda request: seen.append(request) if fragment in request.url else None)
    return seen


class DropProxy:
    """A TCP proxy in front of the gateway that a test can take down, the way a
    network drops: open connections are reset mid-response and new ones are
    reset at once, until up(). (Chromium's offline emulation fails new requests
    but lets a response that is already streaming run on.)"""

    def __init__(self, target_url: str):
        target = urlsplit(target_url)
        self.target = (target.hostname, target.port)
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self.listener.getsockname()[1]}"
        self._lock = threading.Lock()
        self._open: set[socket.socket] = set()
        self._up = True
        threading.Thread(target=self._accept, daemon=True).start()

    def down(self) -> None:
        with self._lock:
            self._up = False
            sockets, self._open = self._open, set()
        for sock in sockets:
            _reset(sock)

    def up(self) -> None:
        with self._lock:
            self._up = True

    def close(self) -> None:
        self.down()
        self.listener.close()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return  # closed
            with self._lock:
                if not self._up:
                    _reset(client)
                    continue
                server = socket.create_connection(self.target)
                self._open |= {client, server}
            for source, sink in ((client, server), (server, client)):
                threading.Thread(target=self._pump, args=(source, sink), daemon=True).start()

    def _pump(self, source: socket.socket, sink: socket.socket) -> None:
        try:
            while data := source.recv(65536):
                sink.sendall(data)
            sink.shutdown(socket.SHUT_WR)
        except OSError:
            pass  # reset by down() or by the other side


def _reset(sock: socket.socket) -> None:
    """Cut a connection with a TCP RST (linger 0), as a dropped network looks
    to the browser. shutdown() first: it wakes the pump blocked in recv(),
    which close() alone would not."""
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        sock.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass  # not connected (yet, or any more)
    sock.close()
