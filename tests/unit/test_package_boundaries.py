"""The packages import one another in one direction only (each package's
__init__ docstring says what it must not import): spool is the core under
both services; gateway and worker never import each other; cli and
mock_upstream are tools on top, which nothing below them imports.

Read with `ast`, so an import inside a function counts as much as one at
the top of a module."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
TOOLS = {"cli", "mock_upstream"}
FORBIDDEN = {
    "spool": {"gateway", "worker", *TOOLS},
    "gateway": {"worker", *TOOLS},
    "worker": {"gateway", *TOOLS},
    "mock_upstream": {"spool", "gateway", "worker", "cli"},
}


def imported_packages(path: Path) -> set[str]:
    """The top-level packages a module imports (relative imports stay inside its own)."""
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            names.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module.split(".")[0])
    return names


def modules(package: str) -> list[Path]:
    found = sorted((ROOT / package).rglob("*.py"))
    assert found, f"no modules under {package}/"
    return found


@pytest.mark.parametrize("package", sorted(FORBIDDEN))
def test_a_package_imports_nothing_above_it(package):
    offences = [f"{path.relative_to(ROOT)} imports {name}"
                for path in modules(package) for name in sorted(imported_packages(path) & FORBIDDEN[package])]
    assert offences == []


def test_the_check_sees_imports_anywhere_in_a_module(tmp_path):
    module = tmp_path / "m.py"
    module.write_text("import os\nfrom spool.keys import Keys\n\ndef f():\n    from gateway.app import create_app\n"
                      "    import worker.main\n    from . import sibling\n")
    assert imported_packages(module) == {"os", "spool", "gateway", "worker"}
