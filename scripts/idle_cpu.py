"""Idle CPU of a spool stack: each process's /proc/<pid>/stat utime+stime
over 20 s with no client. Needs the Redis of REDIS_URL (default local).

    .venv/bin/python scripts/idle_cpu.py [SPOOL_SETTING=value ...]
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests.stack import start_stack  # noqa: E402


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def main() -> None:
    env = dict(arg.split("=", 1) for arg in sys.argv[1:])
    stack = start_stack(os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0"), env=env)
    try:
        time.sleep(5)  # start-up is not idling
        pids = {p.name: p.popen.pid for p in stack.processes}
        before = {name: cpu_seconds(pid) for name, pid in pids.items()}
        started = time.monotonic()
        time.sleep(20)
        span = time.monotonic() - started
        for name, pid in pids.items():
            print(f"{name}: {100 * (cpu_seconds(pid) - before[name]) / span:.2f}% of a core over {span:.0f} s")
    finally:
        stack.stop()


if __name__ == "__main__":
    main()
