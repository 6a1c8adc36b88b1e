"""The client commands' failures: one clear line on stderr and an exit status,
never a traceback (cli/client_commands.py)."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from cli.dev import free_port
from cli.main import main
from tests.stack import ROOT

SID = "A" * 22


@pytest.fixture
def down_url() -> str:
    """A loopback URL nobody listens on: the gateway is down."""
    return f"http://127.0.0.1:{free_port()}"


@pytest.mark.parametrize("argv", [["chat", "hi"], ["status", SID], ["tail", SID]])
def test_a_gateway_that_is_down_is_one_line_and_exit_1(argv, down_url, capsys):
    assert main([*argv, "--url", down_url]) == 1
    out, err = capsys.readouterr()
    assert out == ""
    assert err.count("\n") == 1 and "Traceback" not in err
    assert err.startswith(f"spool: cannot reach the gateway at {down_url}: Connection refused"), err
    assert "spool dev" in err


@pytest.fixture
def gateway():
    """A loopback stand-in for the gateway: a long stream for any events
    request, 404 for anything else."""
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.0"

        def do_GET(self):
            if "/events" not in self.path:
                body = json.dumps({"error": {"code": "not_found", "message": "no such stream"}}).encode()
                self.send_response(404)
                self.send_header("Content-Type", "application/json")
                self.end_headers()
                self.wfile.write(body)
                return
            self.send_response(200)
            self.send_header("Content-Type", "application/x-ndjson")
            self.end_headers()
            lines = [{"seq": 1, "type": "start", "id": SID, "model": "m", "created": 1}]
            lines += [{"seq": n, "type": "delta", "text": "x" * 100} for n in range(2, 5000)]
            lines += [{"seq": 5000, "type": "done", "finish_reason": "stop", "usage": None}]
            try:
                self.wfile.write(b"".join(json.dumps(e).encode() + b"\n" for e in lines))
            except OSError:
                pass  # the client went away

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def test_an_error_answer_is_one_line_and_exit_1(gateway, capsys):
    assert main(["status", SID, "--url", gateway]) == 1
    assert capsys.readouterr().err == "spool: 404 not_found: no such stream\n"


def test_tail_into_a_reader_that_stops_exits_quietly(gateway):
    # `spool tail ID | head -1`: the reader closes the pipe after one line.
    tail = subprocess.Popen([sys.executable, "-m", "cli", "tail", SID, "--url", gateway],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=ROOT)
    assert json.loads(tail.stdout.readline())["seq"] == 1
    tail.stdout.close()
    err = tail.stderr.read()
    assert tail.wait(timeout=30) == 141
    assert err == b""
