"""redis-py's socket checks under gevent: a zero timeout polls at once.

Imports gevent only when called, and changes nothing unless gevent patched
`select` (the gateway's and the worker's processes).
"""

from __future__ import annotations

import logging
import select
import types

log = logging.getLogger(__name__)


def check_connections_without_yielding() -> None:
    """Under gevent, make redis-py's zero-timeout socket checks plain poll(0)s.

    redis-py asks whether a connection has unread data each time it takes
    one from its pool, and whether a readable one was closed each time the
    hub's listener wakes or drains (`get_message`). Its hiredis parser asks
    with `select.poll`, which gevent replaces with a cooperative one that
    arms watchers and switches to the event loop even for a zero timeout:
    5-7% of a gateway's and a worker's CPU (docs/benchmarks.md, third
    pass). A zero-timeout poll never blocks, so the original one serves;
    waits with a timeout stay cooperative. The parser module's `select` (a
    private name of redis-py's, pinned by tests/unit/test_pool_probe.py) is
    given such a poll. Does nothing without gevent's patches.
    """
    from gevent import monkey

    if not monkey.is_module_patched("select"):
        return
    try:
        from redis._parsers import hiredis as parser
    except ImportError:
        log.warning("redis-py's hiredis parser moved: its socket checks run cooperatively (slower)")
        return
    if getattr(parser.select, "spool_plain_poll", False):
        return
    shim = types.ModuleType("select")
    shim.__dict__.update(vars(select))
    shim.poll = _poll_factory(monkey.get_original("select", "poll"), select.poll)
    shim.spool_plain_poll = True
    parser.select = shim


def _poll_factory(plain, cooperative):
    """A `select.poll` whose pollers poll at once with `plain` for a zero
    timeout and wait with `cooperative` for any other."""

    class Poll:
        def __init__(self) -> None:
            self._registered: list[tuple] = []

        def register(self, fd, eventmask: int = select.POLLIN | select.POLLPRI | select.POLLOUT) -> None:
            self._registered.append((fd, eventmask))

        def poll(self, timeout=None) -> list[tuple[int, int]]:
            poller = (plain if timeout == 0 else cooperative)()
            for fd, eventmask in self._registered:
                poller.register(fd, eventmask)
            return poller.poll(timeout)

    return Poll
