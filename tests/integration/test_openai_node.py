"""The official openai npm package (tests/sdk-node) against a real stack."""

from __future__ import annotations

import json

from mock_upstream import expected_text
from tests.node_suite import run_node_suite
from tests.stack import ROOT

NODE_DIR = ROOT / "tests" / "sdk-node"
PROMPTS = ["node stream", "node whole", "node cut"]


def test_openai_node_sdk(stack):
    run_node_suite(NODE_DIR, "sdk.test.mjs", "openai", {
        "SPOOL_BASE_URL": stack.base_url,
        "SPOOL_UPSTREAM_URL": stack.mock_url,
        "SPOOL_EXPECTED": json.dumps({p: expected_text(p, 40) for p in PROMPTS}),
    }, passes=8)
