"""A thread that runs one task every N seconds until stopped.

The worker's upkeep loops (lease renewal and reaping, the reconciler's
sweep, RQ's heartbeat) share this shape: a failure is logged and the next
turn tries again, since a dead upkeep thread would let leases expire or RQ's
records drift while the process looks healthy.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

import redis

log = logging.getLogger(__name__)


class Periodic:
    """Runs `task` every `interval` seconds on a daemon thread named `name`
    (first after one interval, or at once with `at_once`), until `stop()`.

    `what` names the task in the log. A Redis error is a warning, or info
    when `expected(exc)` says it is one (a failover, a restart); anything
    else is logged with its traceback. Neither ends the loop."""

    def __init__(self, name: str, interval: float, task: Callable[[], object], *, what: str,
                 at_once: bool = False, expected: Callable[[redis.RedisError], bool] = lambda exc: False) -> None:
        self._interval = interval
        self._task = task
        self._what = what
        self._at_once = at_once
        self._expected = expected
        self._stopped = threading.Event()
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        """End the loop after the turn under way, if any."""
        self._stopped.set()

    def _run(self) -> None:
        if not self._at_once and self._stopped.wait(self._interval):
            return
        while True:
            try:
                self._task()
            except redis.RedisError as exc:
                (log.info if self._expected(exc) else log.warning)("%s failed (%s); retrying", self._what, exc)
            except Exception:
                log.exception("%s failed; retrying", self._what)
            if self._stopped.wait(self._interval):
                return
