"""The gateway's gunicorn worker: the gunicorn hooks it relies on, pinned, and
its JSON error pages (the slow-client behaviour runs against a real gateway
in tests/integration/test_slow_clients.py)."""

from __future__ import annotations

import importlib.util
import inspect
import json
from pathlib import Path

import gunicorn
from gunicorn.workers import base, base_async
from gunicorn.workers.ggevent import GeventWorker

ROOT = Path(__file__).resolve().parents[2]


def load_worker_module():
    # As gunicorn_conf.py loads it: by path, without the gateway package.
    spec = importlib.util.spec_from_file_location("spool_gunicorn_worker", ROOT / "gateway" / "gunicorn_worker.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_gunicorn_methods_overridden_keep_their_signatures():
    # gunicorn documents none of these as extension points: an upgrade that
    # changes them must fail here, not silently drop a guard in production.
    assert gunicorn.__version__ == "27.0.1"
    assert list(inspect.signature(GeventWorker.timeout_ctx).parameters) == ["self"]
    assert list(inspect.signature(GeventWorker.handle).parameters) == ["self", "listener", "client", "addr"]
    assert list(inspect.signature(GeventWorker.handle_request).parameters) == [
        "self", "listener_name", "req", "sock", "addr"]
    assert list(inspect.signature(base.Worker.handle_error).parameters) == ["self", "req", "client", "addr", "exc"]


def test_gunicorn_still_reads_headers_inside_timeout_ctx_and_writes_errors_to_the_socket_given():
    handle = inspect.getsource(base_async.AsyncWorker.handle)
    assert "with self.timeout_ctx():\n                            req = next(parser)" in handle
    assert "util.write_error(client, status_int, reason, mesg)" in inspect.getsource(base.Worker.handle_error)


def test_json_error_page_keeps_the_status_and_quotes_nothing_of_the_request():
    module = load_worker_module()
    page = module.json_error_page(b"HTTP/1.1 414 URI Too Long")
    head, _, body = page.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 414 URI Too Long\r\n")
    assert b"Content-Type: application/json" in head and b"Connection: close" in head
    assert f"Content-Length: {len(body)}".encode() in head
    assert json.loads(body) == {"error": {"code": "request_line_too_long", "message": "URI Too Long"}}
    assert json.loads(module.json_error_page(b"HTTP/1.1 431 Request Header Fields Too Large").partition(
        b"\r\n\r\n")[2])["error"]["code"] == "headers_too_large"


def test_the_rewriter_replaces_what_gunicorn_writes():
    module = load_worker_module()

    class Sock:
        sent = b""

        def sendall(self, data):
            self.sent += data

        def gettimeout(self):
            return None

    sock = Sock()
    module._ErrorPageRewriter(sock).sendall(b"HTTP/1.1 400 Bad Request\r\nContent-Type: text/html\r\n\r\n<html>")
    assert b"<html>" not in sock.sent and b'"code":"bad_request"' in sock.sent
    assert module._ErrorPageRewriter(sock).gettimeout() is None
