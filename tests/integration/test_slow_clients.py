"""Slow and hostile peers against a gateway exposed directly (issue 19, items 3-4).

Header-dribbling connections (slowloris) and readers that never read are
opened from their own loopback addresses (127.0.0.2, 127.0.0.3) while normal
clients (127.0.0.1) create and follow streams; the normal answers must stay
exact and timely, the slow peers must be cut. Scaled to a 2-core CI machine;
`python -m tests.integration.test_slow_clients --full` runs the issue's full
size once (4,100 dribblers, 40 non-readers, the default timeouts) and prints
the figures docs/reliability.md quotes.
"""

from __future__ import annotations

import argparse
import errno
import json
import re
import socket
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import pytest
import requests

from mock_upstream import expected_text
from tests.client import chat, read

DRIBBLER_ADDRESS = "127.0.0.2"
NON_READER_ADDRESS = "127.0.0.3"


@dataclass
class Scale:
    dribblers: int
    non_readers: int
    normal_clients: int
    env: dict[str, str]
    dribble_seconds: float  # how long dribblers keep sending a byte a second


CI = Scale(
    dribblers=400, non_readers=10, normal_clients=24, dribble_seconds=12,
    env={"SPOOL_GATEWAY_HEADER_TIMEOUT": "2", "SPOOL_GATEWAY_SEND_TIMEOUT": "2",
         "SPOOL_GATEWAY_CONNECTIONS": "300", "SPOOL_GATEWAY_MAX_CONNECTIONS_PER_IP": "100",
         # A non-reader blocks after ~64 KB instead of the kernel's ~4 MB, all
         # of which the gateway would first have to encode on a 2-core runner.
         "SPOOL_GATEWAY_SEND_BUFFER": "32768"},
)
FULL = Scale(dribblers=4100, non_readers=40, normal_clients=60, dribble_seconds=40,
             env={"SPOOL_GATEWAY_SEND_BUFFER": "65536"})


@dataclass
class Dribblers:
    """Connections that send a request line, then a header byte every half second."""

    sockets: list[socket.socket]
    started: float = field(default_factory=time.monotonic)
    cut_after: dict[int, float] = field(default_factory=dict)  # index -> seconds until the gateway cut it
    refused: int = 0

    @classmethod
    def open(cls, host: str, port: int, count: int) -> Dribblers:
        sockets, refused = [], 0
        for _ in range(count):
            sock = socket.socket()
            sock.bind((DRIBBLER_ADDRESS, 0))
            sock.settimeout(5)
            try:
                sock.connect((host, port))
                sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")
            except OSError:
                refused += 1
                sock.close()
                continue
            sock.setblocking(False)
            sockets.append(sock)
        return cls(sockets, refused=refused)

    def run(self, seconds: float) -> None:
        """Dribble until `seconds` have passed or every connection was cut."""
        deadline = self.started + seconds
        while time.monotonic() < deadline and len(self.cut_after) < len(self.sockets):
            for i, sock in enumerate(self.sockets):
                if i in self.cut_after:
                    continue
                try:
                    if sock.recv(1024) == b"":
                        raise ConnectionResetError(errno.ECONNRESET, "closed")
                except BlockingIOError:
                    pass  # still open: dribble on
                except OSError:
                    self.cut_after[i] = time.monotonic() - self.started
                    continue
                try:
                    sock.send(b"X")
                except BlockingIOError:
                    pass
                except OSError:
                    self.cut_after[i] = time.monotonic() - self.started
            time.sleep(0.5)

    def close(self) -> None:
        for sock in self.sockets:
            sock.close()


def open_non_readers(host: str, port: int, path: str, count: int, requests_each: int = 12) -> list[socket.socket]:
    """Connections that pipeline GETs of a large stream and never read a byte."""
    sockets = []
    request = f"GET {path} HTTP/1.1\r\nHost: x\r\n\r\n".encode() * requests_each
    for _ in range(count):
        sock = socket.socket()
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)  # fills at once
        sock.bind((NON_READER_ADDRESS, 0))
        sock.connect((host, port))
        sock.sendall(request)
        sockets.append(sock)
    return sockets


def cuts(base_url: str) -> dict[str, float]:
    text = requests.get(f"{base_url}/metrics", timeout=10).text
    return {m.group(1): float(m.group(2))
            for m in re.finditer(r'spool_gateway_slow_clients_cut_total\{reason="(\w+)"\} ([0-9.e+]+)', text)}


def normal_client(base_url: str, i: int) -> float:
    """One POST followed live to its end, checked word for word; returns its seconds."""
    started = time.monotonic()
    assert requests.get(f"{base_url}/healthz", timeout=30).status_code == 200
    prompt = f"normal client {i}"
    response = requests.post(f"{base_url}/v1/streams", json=chat(prompt, max_tokens=30), stream=True, timeout=30,
                             headers={"Accept": "application/x-ndjson"})
    received = read(response)
    assert received.terminal["type"] == "done", received.events[-3:]
    assert received.text == expected_text(prompt, 30)
    return time.monotonic() - started


def run(stack, scale: Scale) -> dict:
    """The scenario; returns its figures."""
    host, port = stack.base_url.removeprefix("http://").split(":")
    port = int(port)
    big = read(requests.post(f"{stack.base_url}/v1/streams", json=chat("a long answer"), stream=True, timeout=60,
                             headers={"Accept": "application/x-ndjson"}))
    assert big.terminal["type"] == "done"
    events_path = f"/v1/streams/{big.stream_id}/events"
    stream_bytes = len(requests.get(stack.base_url + events_path, timeout=60).content)

    non_readers = open_non_readers(host, port, events_path, scale.non_readers)
    dribblers = Dribblers.open(host, port, scale.dribblers)
    dribbling = threading.Thread(target=dribblers.run, args=(scale.dribble_seconds,), daemon=True)
    dribbling.start()
    try:
        with ThreadPoolExecutor(8) as pool:
            latencies = list(pool.map(lambda i: normal_client(stack.base_url, i), range(scale.normal_clients)))
        # The non-readers' stream stays whole and resumable.
        again = read(requests.get(stack.base_url + events_path, params={"after": 1}, stream=True, timeout=60))
        assert again.events == big.events[1:]
        dribbling.join(scale.dribble_seconds + 30)
        deadline = time.monotonic() + 60
        while cuts(stack.base_url).get("io_timeout", 0) < scale.non_readers and time.monotonic() < deadline:
            time.sleep(0.5)  # the gateway's cuts are seen in /metrics only
        return {
            "stream_bytes": stream_bytes,
            "normal_max_seconds": max(latencies),
            "normal_median_seconds": sorted(latencies)[len(latencies) // 2],
            "dribblers_connected": len(dribblers.sockets),
            "dribblers_refused_at_connect": dribblers.refused,
            "dribblers_cut": len(dribblers.cut_after),
            "dribbler_max_cut_seconds": max(dribblers.cut_after.values(), default=None),
            "cuts": cuts(stack.base_url),
        }
    finally:
        dribblers.close()
        for sock in non_readers:
            sock.close()


@pytest.mark.timeout(300)
def test_slow_peers_are_cut_and_normal_clients_stay_exact(stack_factory):
    stack = stack_factory(env=CI.env, mock_args=["--ttft-ms", "5", "--tokens-per-second", "20000",
                                                  "--tokens", "3000"])
    figures = run(stack, CI)
    # Every dribbler is cut: by the per-IP cap at once, or by the 2 s header
    # deadline (without it gunicorn's keep-alive of 75 s would hold them).
    assert figures["dribblers_cut"] == figures["dribblers_connected"], figures
    assert figures["dribbler_max_cut_seconds"] < CI.dribble_seconds, figures
    assert figures["cuts"].get("per_ip_cap", 0) >= CI.dribblers - 100, figures
    assert figures["cuts"].get("io_timeout", 0) >= CI.non_readers, figures
    # Timely: a normal answer of 30 tokens takes well under a second alone;
    # the bound is loose for a loaded CI machine, yet far below the slow
    # peers' hold without the guards (forever, or 75 s).
    assert figures["normal_max_seconds"] < 20, figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--full", action="store_true", help="the issue's size and the default timeouts")
    parser.add_argument("--per-ip-cap", type=int, default=0)
    args = parser.parse_args()
    from tests.conftest import REDIS_URL
    from tests.stack import start_stack

    scale = FULL if args.full else CI
    env = dict(scale.env)
    if args.per_ip_cap:
        env["SPOOL_GATEWAY_MAX_CONNECTIONS_PER_IP"] = str(args.per_ip_cap)
    stack = start_stack(REDIS_URL, env=env, mock_args=["--ttft-ms", "5", "--tokens-per-second", "20000",
                                                       "--tokens", "40000"])
    try:
        started = time.monotonic()
        figures = run(stack, scale)
        figures["run_seconds"] = time.monotonic() - started
        print(figures)
    finally:
        stack.stop()


if __name__ == "__main__":
    main()


def raw_exchange(base_url: str, request: bytes) -> tuple[bytes, bytes]:
    host, port = base_url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=10) as sock:
        sock.sendall(request)
        data = b""
        while chunk := sock.recv(65536):
            data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    return head, body


def test_gunicorns_own_errors_are_json(stack):
    cases = [
        (b"GET /v1/streams/" + b"a" * 5000 + b" HTTP/1.1\r\nHost: x\r\n\r\n", 414, "request_line_too_long"),
        (b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: " + b"b" * 9000 + b"\r\n\r\n", 431, "headers_too_large"),
        (b"NOT A REQUEST LINE\r\n\r\n", 400, "bad_request"),
    ]
    for request, status, code in cases:
        head, body = raw_exchange(stack.base_url, request)
        assert head.split(b" ")[1] == str(status).encode(), head
        assert b"Content-Type: application/json" in head
        assert json.loads(body)["error"]["code"] == code
        assert b"aaaa" not in body  # nothing of the request is echoed
