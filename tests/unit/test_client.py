"""cli.client's EventStream against a loopback server that drops connections."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

import pytest

from cli.client import SpoolClient, SpoolClientError


def line(seq: int, type_: str = "delta", **fields) -> bytes:
    return json.dumps({"seq": seq, "type": type_, **fields}).encode() + b"\n"


class Script:
    """What the fake gateway answers to each successive events request."""

    def __init__(self, replies: list[tuple[int, bytes]]) -> None:
        self.replies = replies
        self.afters: list[str] = []


@pytest.fixture
def serve():
    servers = []

    def start(script: Script) -> str:
        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.0"  # the body ends when the connection closes

            def do_GET(self):
                script.afters.append(parse_qs(urlsplit(self.path).query)["after"][0])
                status, body = script.replies.pop(0)
                self.send_response(status)
                self.send_header("Content-Type", "application/x-ndjson")
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args):
                pass

        server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        servers.append(server)
        return f"http://127.0.0.1:{server.server_address[1]}"

    yield start
    for server in servers:
        server.shutdown()
        server.server_close()


def test_resumes_after_a_drop_and_delivers_each_seq_once(serve):
    script = Script([
        # Cut mid-line after seq 3: the half line must not count.
        (200, b'{"type":"heartbeat"}\n' + line(1, "start") + line(2, text="a") + line(3, text="b") + b'{"seq":4,"ty'),
        (503, b'{"error":{"code":"unavailable","message":"later"}}'),
        # A replay that overlaps what was already delivered.
        (200, line(2, text="a") + line(3, text="b") + line(4, text="c") + line(5, "done", finish_reason="stop")),
    ])
    stream = SpoolClient(serve(script), max_backoff=0.05).events("A" * 22)
    events = list(stream)
    assert [e["seq"] for e in events] == [1, 2, 3, 4, 5]
    assert "".join(e.get("text", "") for e in events) == "abc"
    assert script.afters == ["0", "3", "3"]
    assert stream.reconnects == 2 and stream.last_seq == 5


def test_a_client_error_is_raised_not_retried(serve):
    script = Script([(404, b'{"error":{"code":"not_found","message":"no such stream"}}')])
    with pytest.raises(SpoolClientError) as info:
        list(SpoolClient(serve(script)).events("A" * 22))
    assert info.value.status == 404 and info.value.code == "not_found"
    assert script.afters == ["0"]


def test_gives_up_when_nothing_progresses(serve):
    script = Script([(503, b"{}")] * 50)
    client = SpoolClient(serve(script), max_backoff=0.02, give_up_after=0.2)
    with pytest.raises(TimeoutError):
        list(client.events("A" * 22, after=7))
    assert set(script.afters) == {"7"}


def test_rejects_a_non_http_url():
    with pytest.raises(ValueError):
        SpoolClient("ftp://example")
