"""The worker's check of idle pooled upstream connections does not yield to
gevent's event loop (worker/upstream.py). Run in a child process: the check
only matters, and is only installed, where gevent has patched `select`."""

from __future__ import annotations

import subprocess
import sys

import pytest

CHILD = """
from gevent import monkey
monkey.patch_all()
import socket, gevent
from httpcore2._backends import sync as sync_backend
from worker.upstream import probe_pooled_connections_without_yielding

if {install}:
    probe_pooled_connections_without_yielding()
ours, theirs = socket.socketpair()
others_ran = []
gevent.spawn(others_ran.append, 1)  # runs at the next switch to the event loop
readable = [sync_backend.is_socket_readable(ours)]
theirs.close()  # the server closed its end: the pooled connection reads as closed
readable.append(sync_backend.is_socket_readable(ours))
print(readable, bool(others_ran))
"""


@pytest.mark.parametrize("install, switched", [(True, False), (False, True)])
def test_the_idle_connection_check_stays_on_the_caller(install, switched):
    out = subprocess.run([sys.executable, "-c", CHILD.format(install=install)], capture_output=True, text=True,
                         timeout=60, check=True).stdout.split("\n")[-2]
    # It still tells an open connection from one the server closed.
    assert out == f"[False, True] {switched}"


def test_the_replaced_httpcore2_function_keeps_its_signature():
    """worker/upstream.py replaces httpcore2's private `is_socket_readable`
    (issue 17): an httpcore2 upgrade that moves, renames or re-signs it must
    fail here, not slow the worker down silently."""
    import inspect

    from httpcore2._backends import sync as sync_backend

    assert str(inspect.signature(sync_backend.is_socket_readable)) == "(sock: 'socket.socket | None') -> 'bool'"
    # And it is the name the pool calls: the connection module looks it up at call time.
    from httpcore2._backends.sync import SyncStream

    assert "is_socket_readable" in inspect.getsource(SyncStream)


REDIS_CHILD = """
from gevent import monkey
monkey.patch_all()
import socket, gevent
from redis._parsers import hiredis as parser
from spool.redis_polls import check_connections_without_yielding

if {install}:
    check_connections_without_yielding()
    check_connections_without_yielding()  # twice: installed once
ours, theirs = socket.socketpair()
others_ran = []
gevent.spawn(others_ran.append, 1)  # runs at the next switch to the event loop
readable = [parser._socket_can_read(ours, 0)]
theirs.sendall(b"+PONG\\r\\n")
readable.append(parser._socket_can_read(ours, 0))
readable.append(parser._socket_is_closed(ours))
theirs.close()
ours.recv(100)  # the reply read: only the server's close is left
readable.append(parser._socket_is_closed(ours))
switched = bool(others_ran)  # by the zero-timeout checks alone
# A wait with a timeout stays cooperative: others run meanwhile.
quiet, other = socket.socketpair()
waited = []
gevent.spawn(waited.append, 1)
readable.append(parser._socket_can_read(quiet, 0.05))  # nothing comes: False after the timeout
gevent.spawn_later(0.02, other.sendall, b"+OK\\r\\n")
readable.append(parser._socket_can_read(quiet, 5))  # woken by the reply
print(readable, switched, bool(waited))
"""


@pytest.mark.parametrize("install, switched", [(True, False), (False, True)])
def test_redis_readiness_check_stays_on_the_caller(install, switched):
    out = subprocess.run([sys.executable, "-c", REDIS_CHILD.format(install=install)], capture_output=True,
                         text=True, timeout=60, check=True).stdout.split("\n")[-2]
    # It still tells a connection with unread data from one without, and
    # an open one from one the server closed; waits with a timeout yield.
    assert out == f"[False, True, False, True, False, True] {switched} True"


def test_redis_parser_polls_through_its_module_global_select():
    """spool/redis_polls.py gives redis-py's hiredis parser module its own
    `select` (a private name): an upgrade that stops polling through it must
    fail here, not slow both services down silently."""
    import inspect
    import select

    from redis._parsers import hiredis as parser

    assert parser.select is select or getattr(parser.select, "spool_plain_poll", False)
    for check in (parser._socket_can_read, parser._socket_is_closed):
        assert "select.poll()" in inspect.getsource(check)
    assert "_socket_can_read(" in inspect.getsource(parser._HiredisParser.can_read)
