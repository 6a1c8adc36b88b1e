"""The official openai npm package (tests/sdk-node) against a real stack."""

from __future__ import annotations

import json
import os
import shutil
import subprocess

import pytest

from mock_upstream import expected_text
from tests.conftest import STRICT
from tests.stack import ROOT

NODE_DIR = ROOT / "tests" / "sdk-node"
PROMPTS = ["node stream", "node whole", "node cut"]


def test_openai_node_sdk(stack):
    node = shutil.which("node")
    if node is None or not (NODE_DIR / "node_modules" / "openai").is_dir():
        message = "needs node and `npm ci` in tests/sdk-node (make test does it)"
        if STRICT:
            pytest.fail(message)
        pytest.skip(message)
    env = {
        **os.environ,
        "SPOOL_BASE_URL": stack.base_url,
        "SPOOL_UPSTREAM_URL": stack.mock_url,
        "SPOOL_EXPECTED": json.dumps({p: expected_text(p, 40) for p in PROMPTS}),
    }
    result = subprocess.run([node, "--test", "sdk.test.mjs"], cwd=NODE_DIR, env=env, capture_output=True,
                            text=True, timeout=120)
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
    assert "# pass 8" in result.stdout and "# fail 0" in result.stdout
