"""worker/transport.py: the SDK's requests over urllib3, against a loopback
server that writes exactly the bytes each test scripts."""

from __future__ import annotations

import contextlib
import gzip
import json
import socket
import threading
import time
from collections.abc import Callable, Iterator

import pytest

from spool.errors import ConfigError, UpstreamError
from spool.settings import Settings
from worker.transport import StallWatch, Urllib3Transport, wants_httpx
from worker.upstream import Upstream, http_client

REQUEST = {"model": "m", "messages": [{"role": "user", "content": "hi"}]}


def sse(*texts: str) -> list[bytes]:
    """An answer's SSE frames, one per text, then usage and [DONE]."""
    frames = [f"data: {json.dumps({'choices': [{'index': 0, 'delta': {'content': t}}]})}\n\n" for t in texts]
    frames.append("data: [DONE]\n\n")
    return [f.encode() for f in frames]


def chunk(data: bytes) -> bytes:
    return b"%x\r\n%s\r\n" % (len(data), data)


HEAD = b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\n"


class Scripted:
    """A loopback HTTP/1.1 server: each request is answered by the next
    script, `script(conn)`, which writes the response itself."""

    def __init__(self) -> None:
        self.scripts: list[Callable[[socket.socket], None]] = []
        self.connections = 0
        self.transport = "urllib3"
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port = self._listener.getsockname()[1]
        self._threads: list[threading.Thread] = []
        self._stop = False
        self._accepting = threading.Thread(target=self._accept, daemon=True)
        self._accepting.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def _accept(self) -> None:
        while not self._stop:
            try:
                conn, _ = self._listener.accept()
            except OSError:
                return
            self.connections += 1
            thread = threading.Thread(target=self._serve, args=(conn,), daemon=True)
            thread.start()
            self._threads.append(thread)

    def _serve(self, conn: socket.socket) -> None:
        reader = conn.makefile("rb")
        with conn, reader:
            while self.scripts:
                head = b""
                while not head.endswith(b"\r\n\r\n"):
                    line = reader.readline()
                    if not line:
                        return
                    head += line
                length = next((int(h.split(b":")[1]) for h in head.split(b"\r\n")
                               if h.lower().startswith(b"content-length:")), 0)
                reader.read(length)
                try:
                    self.scripts.pop(0)(conn)
                except OSError:
                    return

    def close(self) -> None:
        self._stop = True
        self._listener.close()
        for thread in self._threads:
            thread.join(timeout=10)


@pytest.fixture(params=["urllib3", "httpx"])
def server(request) -> Iterator[Scripted]:
    """The server; each test runs on both transports, which must agree."""
    scripted = Scripted()
    scripted.transport = request.param
    yield scripted
    scripted.close()


def upstream(server: Scripted, **settings) -> Upstream:
    values = {"openai_base_url": server.url, "openai_api_key": "k", "upstream_max_retries": 0,
              "upstream_transport": server.transport, **settings}
    return Upstream(Settings(**values), connections=4)


def chunked_answer(*texts: str) -> Callable[[socket.socket], None]:
    def script(conn: socket.socket) -> None:
        conn.sendall(HEAD + b"transfer-encoding: chunked\r\n\r\n")
        for frame in sse(*texts):
            conn.sendall(chunk(frame))
        conn.sendall(b"0\r\n\r\n")
    return script


def first_then_silence(text: str, until: threading.Event) -> Callable[[socket.socket], None]:
    """An answer that sends its first piece, then nothing until `until` (at most 10 s)."""
    def script(conn: socket.socket) -> None:
        conn.sendall(HEAD + b"transfer-encoding: chunked\r\n\r\n" + chunk(sse(text)[0]))
        until.wait(timeout=10)
    return script


def texts(pieces) -> str:
    return "".join(p.text for p in pieces)


def test_the_sdk_runs_on_the_urllib3_transport():
    client = http_client(Settings(openai_base_url="http://127.0.0.1:1/v1"), 4)
    assert isinstance(client._transport, Urllib3Transport)  # noqa: SLF001 (httpx keeps it there)
    httpx = http_client(Settings(openai_base_url="http://127.0.0.1:1/v1", upstream_transport="httpx"), 4)
    assert not isinstance(httpx._transport, Urllib3Transport)  # noqa: SLF001
    with pytest.raises(ConfigError, match="SPOOL_UPSTREAM_TRANSPORT"):
        http_client(Settings(upstream_transport="curl"), 4)


def test_each_chunk_arrives_as_it_is_sent(server):
    second_sent = threading.Event()
    first = sse("Hello")[0]

    def script(conn: socket.socket) -> None:
        conn.sendall(HEAD + b"transfer-encoding: chunked\r\n\r\n" + chunk(first))
        # The rest waits until the client has the first piece: read in bulk
        # or behind a buffer, the client would wait for ever (bounded below).
        if received_first.wait(timeout=10):
            for frame in sse("Hello", " world")[1:]:
                conn.sendall(chunk(frame))
            second_sent.set()
        conn.sendall(b"0\r\n\r\n")

    received_first = threading.Event()
    server.scripts.append(script)
    pieces = []
    for piece in upstream(server, upstream_timeout=10).open(REQUEST):
        pieces.append(piece)
        if texts(pieces) == "Hello":
            assert not second_sent.is_set()
            received_first.set()
    assert texts(pieces) == "Hello world"


def test_answers_share_one_kept_alive_connection(server):
    server.scripts += [chunked_answer("one"), chunked_answer("two"), chunked_answer("three")]
    client = upstream(server)
    assert [texts(client.open(REQUEST)) for _ in range(3)] == ["one", "two", "three"]
    assert server.connections == 1


def test_an_answer_closed_early_does_not_reach_the_next_request(server):
    release = threading.Event()

    def long_answer(conn: socket.socket) -> None:
        conn.sendall(HEAD + b"transfer-encoding: chunked\r\n\r\n")
        for frame in sse("first", "never read")[:1]:
            conn.sendall(chunk(frame))
        release.wait(timeout=10)
        conn.sendall(chunk(sse("never read")[0]))

    server.scripts += [long_answer, chunked_answer("clean")]
    client = upstream(server)
    call = client.open(REQUEST)
    pieces = iter(call)
    assert next(pieces).text == "first"
    call.close()
    release.set()
    assert texts(client.open(REQUEST)) == "clean"
    assert server.connections == 2


def test_a_body_with_a_length_is_read_whole(server):
    body = b"".join(sse("sized", " body"))

    def script(conn: socket.socket) -> None:
        conn.sendall(HEAD + b"content-length: %d\r\n\r\n" % len(body) + body)

    server.scripts += [script, chunked_answer("after")]
    client = upstream(server)
    assert texts(client.open(REQUEST)) == "sized body"
    assert texts(client.open(REQUEST)) == "after"
    assert server.connections == 1


def test_a_compressed_body_is_decoded(server):
    body = gzip.compress(b"".join(sse("zipped")))

    def script(conn: socket.socket) -> None:
        conn.sendall(HEAD + b"content-encoding: gzip\r\ntransfer-encoding: chunked\r\n\r\n"
                     + chunk(body[:10]) + chunk(body[10:]) + b"0\r\n\r\n")

    server.scripts.append(script)
    assert texts(upstream(server).open(REQUEST)) == "zipped"


def test_a_stall_mid_answer_is_a_timeout(server):
    done = threading.Event()

    stalls = first_then_silence("partial", done)

    server.scripts.append(stalls)
    pieces = []
    with pytest.raises(UpstreamError) as raised:
        for piece in upstream(server, upstream_timeout=0.3).open(REQUEST):
            pieces.append(piece)
    done.set()
    assert texts(pieces) == "partial"
    assert raised.value.code == "upstream_timeout"


def test_a_body_cut_short_is_an_upstream_error(server):
    def cut(conn: socket.socket) -> None:
        conn.sendall(HEAD + b"transfer-encoding: chunked\r\n\r\n" + chunk(sse("half")[0]) + b"40\r\nshort")
        conn.shutdown(socket.SHUT_RDWR)

    server.scripts.append(cut)
    with pytest.raises(UpstreamError) as raised:
        list(upstream(server).open(REQUEST))
    assert raised.value.code == "upstream_unreachable"


def test_no_server_is_unreachable():
    with contextlib.closing(socket.create_server(("127.0.0.1", 0))) as taken:
        port = taken.getsockname()[1]
    client = Upstream(Settings(openai_base_url=f"http://127.0.0.1:{port}/v1", upstream_max_retries=0), connections=1)
    with pytest.raises(UpstreamError) as raised:
        client.open(REQUEST)
    assert raised.value.code == "upstream_unreachable"


def test_a_server_error_is_retried_by_the_sdk(server):
    def fails(conn: socket.socket) -> None:
        body = b'{"error": {"message": "busy"}}'
        conn.sendall(b"HTTP/1.1 503 Service Unavailable\r\ncontent-type: application/json\r\n"
                     b"retry-after-ms: 1\r\ncontent-length: %d\r\n\r\n%s" % (len(body), body))

    server.scripts += [fails, chunked_answer("retried")]
    assert texts(upstream(server, upstream_max_retries=1).open(REQUEST)) == "retried"


@pytest.mark.parametrize("environ, wanted", [
    ({}, False),
    ({"https_proxy": "http://proxy:3128"}, True),
    ({"HTTP_PROXY": "http://proxy:3128"}, True),
    ({"ALL_PROXY": "http://proxy:3128", "NO_PROXY": "127.0.0.1,localhost"}, False),
    ({"https_proxy": "http://proxy:3128", "no_proxy": "api.openai.com"}, True),
])
def test_a_proxy_in_the_environment_keeps_httpx(monkeypatch, environ, wanted):
    for name in ("http_proxy", "https_proxy", "all_proxy", "no_proxy"):
        monkeypatch.delenv(name, raising=False)
        monkeypatch.delenv(name.upper(), raising=False)
    for name, value in environ.items():
        monkeypatch.setenv(name, value)
    assert wants_httpx("http://127.0.0.1:8000/v1") is wanted


def test_a_silent_head_is_a_timeout(server):
    done = threading.Event()
    server.scripts.append(lambda conn: done.wait(timeout=10))
    with pytest.raises(UpstreamError) as raised:
        upstream(server, upstream_timeout=0.3).open(REQUEST)
    done.set()
    assert raised.value.code == "upstream_timeout"


def test_after_a_stall_the_next_answer_is_whole(server):
    done = threading.Event()

    stalls = first_then_silence("partial", done)

    server.scripts += [stalls, chunked_answer("whole")]
    client = upstream(server, upstream_timeout=0.3)
    with pytest.raises(UpstreamError):
        list(client.open(REQUEST))
    done.set()
    assert texts(client.open(REQUEST)) == "whole"


def test_the_stall_watch_runs_only_while_a_body_is_open():
    watch = StallWatch(period=0.05)

    class Quiet:
        timeout = 60.0
        heard = 0.0

        def stall(self) -> None:
            raise AssertionError("not silent for 60 s")

    body = Quiet()
    body.heard = time.monotonic()
    watch.watch(body)
    assert watch.running and watch.watching == 1
    watch.forget(body)
    for _ in range(200):  # the watch's thread ends at its next look (0.05 s)
        if not watch.running:
            break
        time.sleep(0.01)  # polling a flag with a bound, not synchronising
    assert not watch.running


def test_a_body_silent_past_its_timeout_is_stalled_once():
    watch = StallWatch(period=0.05)
    stalled = threading.Event()

    class Silent:
        timeout = 0.1
        heard = 0.0
        calls = 0

        def stall(self) -> None:
            self.calls += 1
            stalled.set()

    body = Silent()
    body.heard = time.monotonic()
    watch.watch(body)
    assert stalled.wait(timeout=10)
    assert watch.watching == 0 and body.calls == 1


@pytest.fixture
def urllib3_server() -> Iterator[Scripted]:
    """The server, for what only the urllib3 transport promises."""
    scripted = Scripted()
    yield scripted
    scripted.close()


def test_closing_from_another_thread_ends_a_blocked_read(urllib3_server):
    """The worker closes an answer's call from another greenlet (a cancel, a
    release at shutdown) while its reader waits for the next chunk: the read
    ends at once. (httpx's transport, across real threads, waits for the
    server instead.)"""
    server = urllib3_server
    released = threading.Event()

    waits = first_then_silence("first", released)

    server.scripts += [waits, chunked_answer("next")]
    client = upstream(server, upstream_timeout=30)
    call = client.open(REQUEST)
    pieces = iter(call)
    assert next(pieces).text == "first"
    closer = threading.Timer(0.2, call.close)
    closer.start()
    with pytest.raises(UpstreamError):
        next(pieces)
    ended_before_the_server = not released.is_set()
    released.set()
    closer.join()
    assert ended_before_the_server
    assert texts(client.open(REQUEST)) == "next"
