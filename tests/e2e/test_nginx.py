"""nginx (nginx/templates/spool.conf.template) in front of real gunicorn
gateways: streams pass through as they are written, quiet streams outlive
proxy_read_timeout on heartbeats, resume works, and a killed replica costs
the client one reconnect."""

from __future__ import annotations

import json
import socket
import statistics
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import pytest
import requests

from gateway.static import PAGE_HEADERS
from mock_upstream import expected_text
from spool.decoders import NDJSONDecoder
from tests.client import chat, get_events, post_stream, read
from tests.e2e.nginx_harness import kill_tree, start_nginx
from tests.stack import start_stack, wait_until

HEARTBEAT = 1  # SPOOL_HEARTBEAT_INTERVAL of the stacks here
READ_TIMEOUT = 2  # nginx's proxy_read_timeout here, in seconds
TTFT = 3.0  # the mock's silence before the first token: longer than READ_TIMEOUT
TOKENS = 40
MOCK_ARGS = ["--ttft-ms", str(int(TTFT * 1000)), "--tokens-per-second", "20", "--tokens", str(TOKENS)]
ENV = {"SPOOL_HEARTBEAT_INTERVAL": str(HEARTBEAT)}
# Every checkpoint of a stream may arrive this much later through nginx than
# directly: generous, as buffering would delay them by seconds.
NGINX_LAG = 0.5

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def gateway_stack(redis_url, tmp_path_factory):
    stack = start_stack(redis_url, env=ENV, mock_args=MOCK_ARGS, log_dir=tmp_path_factory.mktemp("stack"))
    yield stack
    stack.stop()


@pytest.fixture(scope="module")
def nginx(gateway_stack, tmp_path_factory):
    server = start_nginx(tmp_path_factory.mktemp("nginx"), gateway_stack.gateway_urls,
                         SPOOL_NGINX_READ_TIMEOUT=f"{READ_TIMEOUT}s")
    yield server
    server.stop()


@dataclass
class Timeline:
    """When each part of one NDJSON response arrived, in seconds after the request."""

    headers: dict[str, str] = field(default_factory=dict)
    first_byte: float = 0.0
    events: list[tuple[float, dict[str, Any]]] = field(default_factory=list)
    heartbeats: list[float] = field(default_factory=list)
    chunks: list[float] = field(default_factory=list)

    @property
    def text(self) -> str:
        return "".join(e["text"] for _, e in self.events if e["type"] == "delta")

    def first(self, type_: str) -> float:
        return next(t for t, e in self.events if e["type"] == type_)

    def text_reached(self, fraction: float) -> float:
        """When the text first reached `fraction` of its final length."""
        total, seen = len(self.text), 0
        for t, e in self.events:
            if e["type"] == "delta":
                seen += len(e["text"])
                if seen >= fraction * total:
                    return t
        raise AssertionError("no text")


def timed_stream(base_url: str, prompt: str) -> Timeline:
    start = time.monotonic()
    response = post_stream(base_url, chat(prompt))
    response.raise_for_status()
    timeline = Timeline(headers=dict(response.headers))
    decoder = NDJSONDecoder()
    with response:
        for chunk in response.iter_content(chunk_size=None):
            now = time.monotonic() - start
            timeline.first_byte = timeline.first_byte or now
            timeline.chunks.append(now)
            for obj in decoder.feed(chunk):
                if obj["type"] == "heartbeat":
                    timeline.heartbeats.append(now)
                else:
                    timeline.events.append((now, obj))
    return timeline


def test_events_arrive_through_nginx_as_soon_as_directly(gateway_stack, nginx):
    # Both at once, so they share the worker's timing; a few pairs for a median.
    with ThreadPoolExecutor(max_workers=6) as pool:
        pairs = [
            (pool.submit(timed_stream, gateway_stack.base_url, f"direct {i}"),
             pool.submit(timed_stream, nginx.url, f"nginx {i}"))
            for i in range(3)
        ]
        results = [(d.result(timeout=30), n.result(timeout=30)) for d, n in pairs]

    checkpoints = {
        "first byte": lambda tl: tl.first_byte,
        "start event": lambda tl: tl.first("start"),
        "first delta": lambda tl: tl.first("delta"),
        "25% of text": lambda tl: tl.text_reached(0.25),
        "50% of text": lambda tl: tl.text_reached(0.5),
        "75% of text": lambda tl: tl.text_reached(0.75),
        "done event": lambda tl: tl.first("done"),
    }
    report = {}
    for name, at in checkpoints.items():
        direct = statistics.median(at(d) for d, _ in results)
        proxied = statistics.median(at(n) for _, n in results)
        report[name] = (round(direct, 3), round(proxied, 3))
        assert proxied - direct <= NGINX_LAG, f"{name}: direct {direct:.3f}s, through nginx {proxied:.3f}s"
    print("\nseconds after the request, median of 3 (direct, through nginx):", report)

    for i, (direct, proxied) in enumerate(results):
        assert direct.text == expected_text(f"direct {i}", TOKENS)
        assert proxied.text == expected_text(f"nginx {i}", TOKENS)
        # Unbuffered: the start event came seconds before the first token.
        assert proxied.first("delta") - proxied.first("start") >= TTFT - 0.5
        assert "Content-Encoding" not in proxied.headers  # requests asks for gzip; streams are never compressed
        assert proxied.headers["X-Stream-Id"]


def test_quiet_stream_outlives_the_read_timeout_on_heartbeats(nginx):
    timeline = timed_stream(nginx.url, "quiet for a while")

    silence = timeline.first("delta") - timeline.first("start")
    assert silence > READ_TIMEOUT + 0.5, "the mock's silence must be longer than nginx's read timeout"
    assert len(timeline.heartbeats) >= 2
    gaps = [b - a for a, b in zip(timeline.chunks, timeline.chunks[1:])]
    assert max(gaps) < READ_TIMEOUT, f"nginx saw {max(gaps):.2f}s without a byte"
    assert timeline.events[-1][1]["type"] == "done"
    assert timeline.text == expected_text("quiet for a while", TOKENS)


def test_resume_through_nginx_with_last_event_id(nginx):
    prompt = "resume me"
    first = read(post_stream(nginx.url, chat(prompt), sse=True), sse=True, stop_after=3)
    assert first.seqs == [1, 2, 3] and first.sse_ids == ["1", "2", "3"]

    # What an EventSource does when its connection drops: the same URL, with
    # the last id it saw as Last-Event-ID.
    rest = read(get_events(nginx.url, first.stream_id, last_event_id=3, sse=True), sse=True)
    assert rest.seqs == list(range(4, 4 + len(rest.events)))
    assert rest.terminal["type"] == "done"
    assert first.text + rest.text == expected_text(prompt, TOKENS)

    # After the end, `after=` replays the rest too, and wins over the header.
    replay = read(get_events(nginx.url, first.stream_id, after=2, last_event_id=30))
    assert replay.seqs[0] == 3 and replay.terminal["type"] == "done"


def test_access_log_has_request_time_and_stream_id(nginx):
    received = read(post_stream(nginx.url, chat("logged")))
    assert received.terminal["type"] == "done"

    def logged() -> dict[str, Any] | None:
        for line in nginx.access_log.read_text().splitlines():
            entry = json.loads(line)
            if entry["stream_id"] == received.stream_id:
                return entry
        return None

    # nginx writes the line once it has finished the request, which may be
    # just after the client has read the last byte.
    wait_until(lambda: logged() is not None, 5, "the access log line")
    entry = logged()
    assert entry["method"] == "POST" and entry["status"] == 200
    assert entry["request_time"] >= TTFT
    assert entry["upstream_addr"].startswith("127.0.0.1:")


def test_a_killed_replica_costs_one_reconnect(stack_factory, tmp_path):
    stack = stack_factory(gateways=2, env=ENV, mock_args=MOCK_ARGS)
    # The test's own nginx names the replica that served each response.
    nginx = start_nginx(tmp_path / "nginx", stack.gateway_urls,
                        extra_http="add_header X-Upstream-Addr $upstream_addr always;")
    try:
        prompt = "survive a replica"
        response = post_stream(nginx.url, chat(prompt))
        served_by = response.headers["X-Upstream-Addr"]
        victim = stack.gateway_procs[stack.gateway_urls.index(f"http://{served_by}")]
        decoder, events = NDJSONDecoder(), []
        chunks = response.iter_content(chunk_size=None)
        while sum(e["type"] == "delta" for e in events) < 5:
            events += [e for e in decoder.feed(next(chunks)) if e["type"] != "heartbeat"]

        kill_tree(victim.pid)
        victim.wait(timeout=10)
        with pytest.raises(requests.RequestException):
            for chunk in chunks:  # the rest of the cut response, then the cut
                events += [e for e in decoder.feed(chunk) if e["type"] != "heartbeat"]
            raise requests.ConnectionError("the response ended cleanly")
        response.close()
        assert events[-1]["type"] == "delta", "the stream was cut before its end"

        last = events[-1]["seq"]
        rest = read(get_events(nginx.url, response.headers["X-Stream-Id"], after=last, last_event_id=last))
        assert rest.seqs[0] == last + 1 and rest.terminal["type"] == "done"
        text = "".join(e["text"] for e in events if e["type"] == "delta") + rest.text
        assert text == expected_text(prompt, TOKENS)

        # New streams keep working: a POST whose connection to the dead replica
        # fails goes to the live one (it was never sent, so it is not re-sent).
        for i in range(3):
            created = requests.post(f"{nginx.url}/v1/streams", json=chat(f"after {i}"), timeout=10)
            assert created.status_code == 202, nginx.error_log_tail()
            assert created.headers["X-Upstream-Addr"].split(", ")[-1] != served_by
    finally:
        nginx.stop()


# nginx alone, with no gateway or a misbehaving one.

def closed_port_url() -> str:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{sock.getsockname()[1]}"  # nothing listens once closed


@pytest.fixture
def lonely_nginx(tmp_path):
    server = start_nginx(tmp_path / "nginx", [closed_port_url()])
    yield server
    server.stop()


def test_frontend_is_served_with_index_fallback(lonely_nginx):
    for path in ("/", "/s/some-stream-id"):
        page = requests.get(lonely_nginx.url + path, timeout=5)
        assert page.status_code == 200 and "spool test page" in page.text
        assert page.headers["Cache-Control"] == "no-cache"
        assert {k: page.headers[k] for k in PAGE_HEADERS} == PAGE_HEADERS
    assert requests.get(lonely_nginx.url + "/assets/missing.js", timeout=5).status_code == 404


def test_no_gateway_is_a_json_503(lonely_nginx):
    for path in ("/healthz", "/v1/streams/" + "a" * 22):
        response = requests.get(lonely_nginx.url + path, timeout=10)
        assert response.status_code == 503
        assert response.headers["Retry-After"] == "1"
        assert response.json()["error"]["code"] == "unavailable"


def test_oversized_body_is_a_json_413(lonely_nginx):
    response = requests.post(f"{lonely_nginx.url}/v1/streams", data=b"x" * 2_000_000,
                             headers={"Content-Type": "application/json"}, timeout=10)
    assert response.status_code == 413
    assert response.json()["error"]["code"] == "payload_too_large"


def test_read_timeout_cuts_a_silent_gateway(tmp_path):
    """The control for the heartbeat test: without bytes, nginx does cut."""
    listener = socket.create_server(("127.0.0.1", 0))
    release = threading.Event()

    def silent_gateway() -> None:
        conn, _ = listener.accept()
        with conn:
            conn.recv(65536)
            conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: application/x-ndjson\r\n"
                         b"Transfer-Encoding: chunked\r\n\r\n"
                         b"1b\r\n{\"seq\":1,\"type\":\"start\"}\n\r\n")
            release.wait(30)  # then silence until the test ends

    thread = threading.Thread(target=silent_gateway, daemon=True)
    thread.start()
    server = start_nginx(tmp_path / "nginx", [f"http://127.0.0.1:{listener.getsockname()[1]}"],
                         SPOOL_NGINX_READ_TIMEOUT="1s")
    try:
        start = time.monotonic()
        response = requests.get(f"{server.url}/v1/streams/{'b' * 22}/events", stream=True, timeout=10)
        assert response.status_code == 200
        with pytest.raises(requests.RequestException):
            for _ in response.iter_content(chunk_size=None):
                pass
            raise requests.ConnectionError("the response ended cleanly")
        assert 0.8 <= time.monotonic() - start < 5
    finally:
        release.set()
        server.stop()
        listener.close()
        thread.join(5)
