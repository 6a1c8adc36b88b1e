"""Ten fresh `spool dev` starts in a row, each running the README's examples.

    .venv/bin/python scripts/dev-starts.py [--starts 10]

Each start is a new `spool dev` (a new embedded valkey-server, nothing kept)
on a free port; the examples are tests/integration/test_dev.py's
`readme_examples`: stream, resume, queue, snapshot, cancel. Prints one line
per start and exits 1 if any start hung, failed or answered 503.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.integration.test_dev import Dev, readme_examples  # noqa: E402
from tests.stack import free_port  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--starts", type=int, default=10)
    args = parser.parse_args()
    failures = 0
    logs = Path(tempfile.mkdtemp(prefix="spool-dev-starts-"))
    for n in range(1, args.starts + 1):
        began = time.monotonic()
        dev = Dev(free_port(), logs / f"start-{n}.log")
        try:
            dev.wait_running()
            started = time.monotonic() - began
            readme_examples(dev.url)
            outcome = f"ok (up in {started:.1f} s, examples in {time.monotonic() - began - started:.1f} s)"
        except Exception as exc:  # noqa: BLE001  (report every start, then fail)
            failures += 1
            outcome = f"FAILED: {type(exc).__name__}: {str(exc)[:300]}"
        finally:
            code = dev.stop()
        if code != 0 and not outcome.startswith("FAILED"):
            failures += 1
            outcome = f"FAILED: spool dev exited {code} on Ctrl-C"
        print(f"start {n:2d}: {outcome}", flush=True)
    print(f"{args.starts - failures} of {args.starts} starts served stream, resume and cancel; logs in {logs}")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
