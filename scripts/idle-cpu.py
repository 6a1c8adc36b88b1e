"""Idle CPU of every process of `spool dev`, from /proc/<pid>/stat.

    .venv/bin/python scripts/idle-cpu.py [--seconds 20] [--warm] [--settle S] [-- spool dev args]

Starts `spool dev` on a free port, waits for its "spool is running" line
(and with --warm, streams one answer and waits out the TailHub's linger),
then reads each process's user+system CPU time before and after `--seconds`
with no client, and prints one line per process as a percentage of a core.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.procs import cpu_seconds  # noqa: E402
from cli.dev import free_port  # noqa: E402

LINGER_SECONDS = 35  # the TailHub keeps its subscription 30 s after its last follower


def descendants(pid: int) -> list[int]:
    """Every process under `pid`, depth first."""
    found = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        for child in (task / "children").read_text().split():
            found.append(int(child))
            found += descendants(int(child))
    return found


def describe(pid: int, dev_pid: int) -> str:
    argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    words = [a.decode(errors="replace") for a in argv if a]
    parent = int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])
    if pid == dev_pid:
        return "spool dev itself"
    if "gunicorn" in words or "gateway" in words:
        # `spool gateway` execs gunicorn; its workers are the master's children.
        return "gateway: gunicorn master" if parent == dev_pid else "gateway: gunicorn worker"
    for name in ("mock-upstream", "worker"):
        if name in words:
            return name
    if words and "valkey-server" in words[0]:
        return "valkey-server (embedded)"
    return " ".join(words)[:60]


def stream_once(url: str) -> None:
    request = urllib.request.Request(
        url + "/v1/streams", method="POST",
        data=json.dumps({"messages": [{"role": "user", "content": "warm up"}]}).encode(),
        headers={"Content-Type": "application/json", "Accept": "application/x-ndjson"})
    with urllib.request.urlopen(request, timeout=60) as response:
        response.read()


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--warm", action="store_true", help="stream one answer first, then wait out the linger")
    parser.add_argument("--settle", type=float, default=None,
                        help=f"seconds to wait before measuring (default 2; with --warm {LINGER_SECONDS})")
    parser.add_argument("dev_args", nargs="*")
    args = parser.parse_args()
    port = free_port()
    dev = subprocess.Popen([sys.executable, "-m", "cli", "dev", "--port", str(port), *args.dev_args],
                           stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, cwd=ROOT, text=True,
                           start_new_session=True)
    try:
        for line in dev.stdout:
            if line.startswith("spool is running at"):
                break
        else:
            raise SystemExit("spool dev exited before it was running")
        if args.warm:
            stream_once(f"http://127.0.0.1:{port}")
        time.sleep(args.settle if args.settle is not None else LINGER_SECONDS if args.warm else 2)
        pids = [dev.pid, *descendants(dev.pid)]
        before = {pid: cpu_seconds(pid) for pid in pids}
        time.sleep(args.seconds)
        after = {pid: cpu_seconds(pid) for pid in pids}
        after_what = " after one stream" if args.warm else ""
        print(f"idle CPU over {args.seconds:.0f} s{after_what}, % of one core:")
        for pid in pids:
            print(f"  {100 * (after[pid] - before[pid]) / args.seconds:6.1f}%  {describe(pid, dev.pid)} (pid {pid})")
        total = sum(after[p] - before[p] for p in pids)
        print(f"  {100 * total / args.seconds:6.1f}%  all of spool dev")
    finally:
        os.killpg(dev.pid, signal.SIGINT)
        dev.wait(timeout=30)
    return 0


if __name__ == "__main__":
    sys.exit(main())
