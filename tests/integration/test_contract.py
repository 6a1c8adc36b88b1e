"""Fuzz a live gateway against its own OpenAPI document with schemathesis:
no 5xx, and every status, content type, header and body as documented.

Bounded: a fixed number of examples per operation, a per-request timeout and
an overall time budget, so it fits in CI next to the other tiers.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration

API_KEY = "contract-key-0123456789-abcdefghijk"
CHECKS = ",".join([
    "not_a_server_error",
    "status_code_conformance",
    "content_type_conformance",
    "response_headers_conformance",
    "response_schema_conformance",
])
MAX_EXAMPLES = 25
# A hard cap only: --max-time would make fuzzing repeat until it is spent.
BUDGET_SECONDS = 200


@pytest.mark.timeout(BUDGET_SECONDS + 60)
def test_live_gateway_matches_its_openapi_document(stack_factory, tmp_path):
    stack = stack_factory(env={"SPOOL_API_KEYS": API_KEY, "SPOOL_SECRET_KEY": "contract-secret-0123456789-abcdefgh",
                               "SPOOL_MODELS": "mock,mock-error", "SPOOL_MAX_INPUT_CHARS": "2000"},
                          mock_args=["--ttft-ms", "0", "--tokens-per-second", "2000", "--tokens", "5"])
    report = tmp_path / "junit.xml"
    command = [
        str(Path(sys.executable).with_name("schemathesis")), "run", f"{stack.base_url}/openapi.json",
        "--checks", CHECKS,
        "--header", f"Authorization: Bearer {API_KEY}",
        "--max-examples", str(MAX_EXAMPLES),
        "--phases", "examples,coverage,fuzzing,stateful",
        "--request-timeout", "10",
        # One worker: hypothesis' lambda descriptions call ast.parse, which
        # CPython 3.11 does not make thread-safe ("AST constructor recursion
        # depth mismatch").
        "--workers", "1",
        "--seed", "6",
        "--generation-database", "none",
        "--no-color",
        "--report", "junit", "--report-junit-path", str(report),
    ]
    # cwd: schemathesis keeps a crash cache in ./.schemathesis.
    result = subprocess.run(command, capture_output=True, text=True, timeout=BUDGET_SECONDS, cwd=tmp_path)
    output = result.stdout + result.stderr
    (tmp_path / "schemathesis.txt").write_text(output)
    assert result.returncode == 0, output[-6000:] + "\n" + stack.logs()
    # It really exercised every documented operation, with many cases.
    assert re.search(r"Tested:\s+10\b", output), output[-2000:]
    generated = re.search(r"(\d+) generated, (\d+) passed", output)
    assert generated and int(generated[1]) == int(generated[2]) >= 100, output[-2000:]
