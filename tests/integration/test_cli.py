"""`spool chat`, `spool status` and `spool tail` against real stacks."""

from __future__ import annotations

import json
import re
import signal
import subprocess
import sys

import pytest

from mock_upstream import expected_text
from tests.stack import ROOT, free_port, http_ok

CLI_SECONDS = 60


def spool(*args: str, env: dict[str, str] | None = None) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "cli", *args], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, cwd=ROOT, env=env)


def start_chat(url: str, prompt: str) -> tuple[subprocess.Popen, str, bytes]:
    """Run `spool chat`; returns it with its stream id and its first output."""
    proc = spool("chat", prompt, "--url", url)
    line = proc.stderr.readline().decode()
    assert line.startswith("stream "), line
    first = proc.stdout.read1(65536)  # blocks until the answer starts arriving
    assert first
    return proc, line.split()[1], first


def test_chat_prints_the_answer_exactly(stack):
    proc = spool("chat", "hello cli", "--url", stack.base_url)
    out, err = proc.communicate(timeout=CLI_SECONDS)
    assert proc.returncode == 0, err
    assert out.decode() == expected_text("hello cli", 40) + "\n"


def test_status_and_tail_of_an_ended_stream(stack):
    proc = spool("chat", "for the operator", "--url", stack.base_url)
    _, err = proc.communicate(timeout=CLI_SECONDS)
    assert proc.returncode == 0, err.decode()
    stream_id = re.search(r"^stream (\S+)$", err.decode(), re.M).group(1)
    status = spool("status", stream_id, "--url", stack.base_url)
    out, err = status.communicate(timeout=CLI_SECONDS)
    assert status.returncode == 0, err.decode()
    snapshot = json.loads(out)
    assert snapshot["status"] == "done" and snapshot["text"] == expected_text("for the operator", 40)
    tail = spool("tail", stream_id, "--after", "1", "--url", stack.base_url)
    events = [json.loads(line) for line in tail.communicate(timeout=CLI_SECONDS)[0].splitlines()]
    assert [e["seq"] for e in events] == list(range(2, snapshot["last_seq"] + 1))
    assert events[-1]["type"] == "done"


def test_status_of_an_unknown_stream_fails_clearly(stack):
    proc = spool("status", "A" * 22, "--url", stack.base_url)
    _, err = proc.communicate(timeout=CLI_SECONDS)
    assert proc.returncode == 1 and b"404 not_found" in err


def test_chat_survives_a_gateway_restart(stack_factory):
    stack = stack_factory(gateways=0, mock_args=["--ttft-ms", "20", "--tokens-per-second", "20", "--tokens", "60"])
    port = free_port()
    url = f"http://127.0.0.1:{port}"

    def gateway(name: str):
        process = stack.spawn(name, "gateway", "--bind", f"127.0.0.1:{port}", "--workers", "1")
        stack._wait(process, lambda: http_ok(url + "/healthz"), f"{name} at {url}")
        return process

    first_gateway = gateway("gateway-first")
    proc, stream_id, first = start_chat(url, "across a restart")
    assert len(first) < len(expected_text("across a restart", 60).encode())  # mid-answer
    first_gateway.stop(signal.SIGQUIT)  # gunicorn's quick shutdown: connections are cut
    assert first_gateway.popen.returncode is not None
    gateway("gateway-second")
    rest, err = proc.communicate(timeout=CLI_SECONDS)
    assert proc.returncode == 0, err
    assert (first + rest).decode() == expected_text("across a restart", 60) + "\n"


def test_ctrl_c_cancels_the_generation_on_the_server(stack_factory):
    stack = stack_factory(mock_args=["--ttft-ms", "20", "--tokens-per-second", "20", "--tokens", "400"])
    proc, stream_id, _ = start_chat(stack.base_url, "stop me")
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=CLI_SECONDS)
    assert proc.returncode == 130, err
    status = spool("status", stream_id, "--url", stack.base_url)
    snapshot = json.loads(status.communicate(timeout=CLI_SECONDS)[0])
    assert snapshot["status"] == "cancelled"
    (record,) = [r for r in stack.mock_stats() if r["prompt"] == "stop me"]
    assert record["tokens_sent"] < 400 and not record["finished"]
