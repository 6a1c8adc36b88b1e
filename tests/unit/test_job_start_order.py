"""A job's generation goes before RQ's bookkeeping for it (worker/rq_worker.py).
Run in a child process: the order only matters, and only holds, where gevent
has patched `threading` (real threads run side by side)."""

from __future__ import annotations

import subprocess
import sys

CHILD = """
from gevent import monkey
monkey.patch_all()
import threading
from worker.rq_worker import _Prepared

order = []

class Worker:
    queues = ["q"]
    _running_lock = threading.Lock()
    _running = {}

    def prepare_execution(self, job):
        order.append("bookkeeping")
        return "execution"

    def prepare_job_execution(self, job, remove_from_intermediate_queue):
        pass

class Job:
    id = "j"

prepared = _Prepared(Worker(), Job())
order.append("generation")  # what perform_job runs next: the runner
assert prepared.wait() == "execution"
print(order)
"""


def test_the_generation_runs_before_rqs_bookkeeping():
    out = subprocess.run([sys.executable, "-c", CHILD], capture_output=True, text=True, timeout=60,
                         check=True).stdout.split("\n")[-2]
    assert out == "['generation', 'bookkeeping']"
