"""Idle means idle (issue 18): a worker with nothing to do blocks in Redis
calls and timers, it does not poll. Measured as the process's CPU time
(/proc/<pid>/stat utime + stime) over 10 s; docs/operations.md has the 20 s figure."""

from __future__ import annotations

import os
import time

from tests.stack import wait_until


def cpu_seconds(pid: int) -> float:
    fields = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def test_an_idle_worker_uses_well_under_5_percent_of_a_core(stack_factory):
    stack = stack_factory(gateways=0)
    [worker] = stack.worker_procs
    # Start-up (imports, registration) is not idling: wait for the first heartbeat's quiet.
    wait_until(lambda: cpu_seconds(worker.pid) > 0, 10, "the worker to run")
    time.sleep(2)
    before, started = cpu_seconds(worker.pid), time.monotonic()
    time.sleep(10)
    share = (cpu_seconds(worker.pid) - before) / (time.monotonic() - started)
    assert worker.poll() is None
    assert share < 0.05, f"idle worker used {share:.1%} of a core"
