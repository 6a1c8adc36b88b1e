"""Running an npm package's own tests (`node --test`) from pytest, against a
real stack: tests/sdk-node (the openai package) and tests/ai-sdk-node (ai)."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

from tests.conftest import require
from tests.stack import ROOT


def run_node_suite(directory: Path, script: str, package: str, env: dict[str, str], *, passes: int) -> None:
    """Run `node --test script` in `directory` with `env` added to the
    environment, and check that all `passes` tests passed. Without node or
    the directory's `npm ci` (its `package` missing) the test fails under
    SPOOL_TEST_STRICT, else skips."""
    node = shutil.which("node")
    require(node is not None and (directory / "node_modules" / package).is_dir(),
            f"needs node and `npm ci` in {directory.relative_to(ROOT)} (make test does it)")
    result = subprocess.run([node, "--test", script], cwd=directory, env={**os.environ, **env},
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
    assert f"# pass {passes}" in result.stdout and "# fail 0" in result.stdout
