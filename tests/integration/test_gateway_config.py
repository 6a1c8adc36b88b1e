"""A real `spool gateway` with a dangerous configuration exits at start, non-zero,
with one line naming the setting, before it serves anything (gunicorn's
master runs spool/security_config.py's checks before any worker starts)."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from spool.security_config import MIN_SECRET_LENGTH
from tests.stack import ROOT, free_port

pytestmark = pytest.mark.integration

KEY = "a-long-enough-gateway-key-0123456789"
SECRET = "x" * MIN_SECRET_LENGTH


def run_gateway(tmp_path, **env: str) -> tuple[int, str]:
    """Start `spool gateway` with only `env` of the security settings; its exit
    code and output once it exits (or fail when it starts serving)."""
    base = {k: v for k, v in os.environ.items() if not k.startswith("SPOOL_")}
    base.update({"REDIS_URL": "redis://127.0.0.1:1/0",  # never reached: it must not get that far
                 "PROMETHEUS_MULTIPROC_DIR": str(tmp_path), "PYTHONUNBUFFERED": "1", **env})
    command = [sys.executable, "-m", "cli", "gateway", "--bind", f"127.0.0.1:{free_port()}", "--workers", "1"]
    process = subprocess.Popen(command, env=base, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        output, _ = process.communicate(timeout=30)
    except subprocess.TimeoutExpired:
        process.kill()
        output, _ = process.communicate()
        pytest.fail(f"the gateway kept running:\n{output.decode(errors='replace')}")
    return process.returncode, output.decode(errors="replace")


def assert_refused(code: int, output: str, *expected: str) -> None:
    assert code != 0, output
    lines = [line for line in output.splitlines() if "configuration error" in line]
    assert len(lines) == 1, output
    for text in expected:
        assert text in lines[0], output
    assert "Traceback" not in output, output
    assert "Booting worker" not in output, output  # stopped before any worker


def test_an_empty_keys_file_stops_the_gateway(tmp_path):
    keys = tmp_path / "keys"
    keys.write_text("# the keys go here\n\n")
    code, output = run_gateway(tmp_path, SPOOL_API_KEYS_FILE=str(keys), SPOOL_SECRET_KEY=SECRET)
    assert_refused(code, output, "SPOOL_API_KEYS_FILE", str(keys), "holds no key")


def test_open_mode_without_the_opt_in_stops_the_gateway(tmp_path):
    code, output = run_gateway(tmp_path)
    assert_refused(code, output, "no API keys", "SPOOL_ALLOW_OPEN=1")


def test_keys_without_a_secret_or_too_short_stop_the_gateway(tmp_path):
    code, output = run_gateway(tmp_path, SPOOL_API_KEYS=KEY)
    assert_refused(code, output, "SPOOL_SECRET_KEY")
    code, output = run_gateway(tmp_path, SPOOL_API_KEYS="Zq9Xw", SPOOL_SECRET_KEY=SECRET)
    assert_refused(code, output, "SPOOL_API_KEYS", "key #1 has 5 characters")
    assert "Zq9Xw" not in output  # the refused key is not shown


def test_a_cors_wildcard_stops_the_gateway(tmp_path):
    code, output = run_gateway(tmp_path, SPOOL_ALLOW_OPEN="1", SPOOL_CORS_ORIGINS="https://*.example.com")
    assert_refused(code, output, "SPOOL_CORS_ORIGINS", "https://*.example.com")
