"""`spool dev` as a newcomer runs it: a real process, its embedded
valkey-server, the mock model, a free port; the README's examples on it.

scripts/dev-starts.py runs `readme_examples` on many fresh starts in a row.
"""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import redis
import requests

from tests.stack import ROOT, free_port

pytestmark = pytest.mark.integration

START_SECONDS = 90
REQUEST_SECONDS = 30
STREAM_SECONDS = 60  # a 200-token mock answer takes ~4 s
PROMPT = {"messages": [{"role": "user", "content": "Tell me about streams"}]}


class Dev:
    """One `spool dev` process; its output goes to `log_path`."""

    def __init__(self, port: int, log_path: Path, env: dict[str, str] | None = None) -> None:
        self.url = f"http://127.0.0.1:{port}"
        self.log_path = log_path
        base = {k: v for k, v in os.environ.items() if k not in ("REDIS_URL", "OPENAI_API_KEY", "OPENAI_BASE_URL")}
        with open(log_path, "wb") as log:
            self.popen = subprocess.Popen([sys.executable, "-m", "cli", "dev", "--port", str(port)],
                                          stdout=log, stderr=subprocess.STDOUT, cwd=ROOT,
                                          env={**base, **(env or {})}, start_new_session=True)

    def wait_running(self) -> None:
        """Until the "spool is running" line: spool dev prints it once the gateway answers."""
        deadline = time.monotonic() + START_SECONDS
        while time.monotonic() < deadline:
            if f"spool is running at {self.url}" in self.output():
                return
            if self.popen.poll() is not None:
                break
            time.sleep(0.2)  # another process's readiness: nothing to await
        raise AssertionError(f"spool dev did not start:\n{self.output()[-4000:]}")

    def output(self) -> str:
        return self.log_path.read_text(errors="replace")

    def redis_url(self) -> str:
        return re.search(r"embedded valkey-server at (redis://\S+);", self.output()).group(1)

    def stop(self) -> int:
        """Ctrl-C, as a terminal sends it: SIGINT to the whole process group."""
        if self.popen.poll() is None:
            os.killpg(self.popen.pid, signal.SIGINT)
            try:
                self.popen.wait(timeout=60)
            except subprocess.TimeoutExpired:
                self.popen.kill()
                self.popen.wait()
        return self.popen.returncode


def ndjson(response: requests.Response, within: float = STREAM_SECONDS) -> list[dict]:
    """The response's events; AssertionError if it has not ended `within` seconds
    (heartbeats would keep a hung stream inside any read timeout)."""
    deadline = time.monotonic() + within
    events = []
    for line in response.iter_lines():
        if line:
            events.append(json.loads(line))
        if time.monotonic() > deadline:
            raise AssertionError(f"hung: the stream did not end within {within:.0f} s; got {events[-3:]}")
    return events


def readme_examples(url: str) -> None:
    """The README's curl examples: stream, resume (after= and Last-Event-ID),
    queue, snapshot and cancel. Raises AssertionError on anything but the
    documented answers; every request is bounded."""
    with requests.post(f"{url}/v1/streams", json=PROMPT, headers={"Accept": "application/x-ndjson"},
                       stream=True, timeout=REQUEST_SECONDS) as response:
        assert response.status_code == 200, response.text
        stream_id = response.headers["X-Stream-Id"]
        events = [e for e in ndjson(response) if "seq" in e]
    assert events[0]["type"] == "start" and events[-1]["type"] == "done", events[-3:]
    assert [e["seq"] for e in events] == list(range(1, len(events) + 1))

    resumed = requests.get(f"{url}/v1/streams/{stream_id}/events?after=3", timeout=REQUEST_SECONDS)
    assert resumed.status_code == 200, resumed.text
    assert [e for e in ndjson(resumed) if "seq" in e] == events[3:]
    sse = requests.get(f"{url}/v1/streams/{stream_id}/events", timeout=REQUEST_SECONDS,
                       headers={"Accept": "text/event-stream", "Last-Event-ID": "3"})
    assert sse.status_code == 200 and re.findall(r"^id: (\d+)$", sse.text, re.M)[0] == "4", sse.text[:300]

    queued = requests.post(f"{url}/v1/streams", json={"messages": [{"role": "user", "content": "hi"}]},
                           timeout=REQUEST_SECONDS)
    assert queued.status_code == 202 and queued.json()["status"] == "queued", queued.text
    other = queued.json()["id"]
    snapshot = requests.get(f"{url}/v1/streams/{other}", timeout=REQUEST_SECONDS)
    assert snapshot.status_code == 200 and snapshot.json()["id"] == other, snapshot.text
    cancel = requests.post(f"{url}/v1/streams/{other}/cancel", timeout=REQUEST_SECONDS)
    # The mock takes ~4 s per answer: the cancel lands before it ends.
    assert cancel.status_code == 200 and cancel.json() == {"id": other, "status": "cancelled"}, cancel.text
    assert requests.get(f"{url}/v1/streams/{other}", timeout=REQUEST_SECONDS).json()["status"] == "cancelled"


@pytest.mark.timeout(START_SECONDS + 120)
def test_a_fresh_spool_dev_serves_the_readme_examples_and_stops_on_ctrl_c(tmp_path):
    dev = Dev(free_port(), tmp_path / "dev.log")
    try:
        dev.wait_running()
        assert "Model: the built-in MOCK upstream" in dev.output()
        readme_examples(dev.url)
        assert requests.get(f"{dev.url}/upstream", timeout=REQUEST_SECONDS).json() == {"mock": True}
        redis_url = dev.redis_url()
        assert redis.Redis.from_url(redis_url).info("server")["valkey_version"]
    finally:
        code = dev.stop()
    assert code == 0, dev.output()[-4000:]
    assert "Traceback" not in dev.output(), dev.output()[-4000:]
    with pytest.raises(redis.ConnectionError):  # the embedded server stopped with it
        redis.Redis.from_url(redis_url, socket_connect_timeout=2).ping()


@pytest.mark.timeout(60)
def test_a_taken_port_fails_at_once_and_clearly(tmp_path):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        dev = Dev(port, tmp_path / "dev.log")
        assert dev.popen.wait(timeout=30) == 1
    assert f"port {port} is already in use" in dev.output()
    assert "Traceback" not in dev.output() and "valkey" not in dev.output()


@pytest.mark.timeout(START_SECONDS + 60)
def test_start_up_lines_mask_the_redis_password(tmp_path, redis_url):
    # A password in REDIS_URL: the shared Redis has none, so it is refused
    # (or ignored), but the start-up lines must never show it.
    url = redis_url.replace("redis://", "redis://:hunter2secret@", 1)
    dev = Dev(free_port(), tmp_path / "dev.log", env={"REDIS_URL": url, "SPOOL_KEY_PREFIX": "tdev",
                                                     "SPOOL_QUEUE": f"tdev{os.getpid()}"})
    try:
        deadline = time.monotonic() + START_SECONDS
        while "Redis: " not in dev.output() and dev.popen.poll() is None and time.monotonic() < deadline:
            time.sleep(0.2)
    finally:
        dev.stop()
    assert "Redis: redis://:***@127.0.0.1" in dev.output(), dev.output()[-3000:]
    assert "hunter2secret" not in dev.output()
