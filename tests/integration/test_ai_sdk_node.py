"""The `ai` npm package's DefaultChatTransport (tests/ai-sdk-node) against a real stack."""

from __future__ import annotations

import json
import os
import shutil
import subprocess

import pytest

from spool.mock_upstream import expected_text
from tests.conftest import STRICT
from tests.stack import ROOT

NODE_DIR = ROOT / "tests" / "ai-sdk-node"
PROMPTS = ["ui send", "ui resume", "ui after", "ui stop", "ui reset"]
TOKENS = 40


def test_ai_sdk_transport(stack_factory):
    node = shutil.which("node")
    if node is None or not (NODE_DIR / "node_modules" / "ai").is_dir():
        message = "needs node and `npm ci` in tests/ai-sdk-node (make test does it)"
        if STRICT:
            pytest.fail(message)
        pytest.skip(message)
    # 40 tokens at 40/s: a second per answer, so a reconnect usually finds it live.
    stack = stack_factory(mock_args=["--ttft-ms", "20", "--tokens-per-second", "40", "--tokens", str(TOKENS)])
    env = {
        **os.environ,
        "SPOOL_BASE_URL": stack.base_url,
        "SPOOL_EXPECTED": json.dumps({p: expected_text(p, TOKENS) for p in PROMPTS}),
    }
    result = subprocess.run([node, "--test", "transport.test.mjs"], cwd=NODE_DIR, env=env, capture_output=True,
                            text=True, timeout=120)
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
    assert "# pass 6" in result.stdout and "# fail 0" in result.stdout
    # Stop reached the upstream: the stalled request was aborted, not left hanging.
    stalled = [r for r in stack.mock_stats() if r["prompt"] == "ui stop"]
    assert len(stalled) == 1 and stalled[0]["aborted"] and not stalled[0]["finished"]
