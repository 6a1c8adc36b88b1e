"""The TailHub's reads (spool/streams/reads.py): on a cluster, the per-slot
script answers exactly what XREAD would, without asking any node COMMAND
GETKEYS; on one Redis, plain XREAD."""

from __future__ import annotations

import contextlib

import pytest

from spool.keys import Keys, new_stream_id
from spool.redis_client import is_cluster
from spool.streams.reads import read_streams
from tests.unit.conftest import backend


@pytest.fixture(params=["fakeredis", "redis", "cluster"])
def redis_client(request, prefix):
    yield from backend(request, prefix)


@contextlib.contextmanager
def no_keys_asked(client):
    """Fails a cluster client's command that asks a node COMMAND GETKEYS (the
    point of the read script and of naming a pipelined script's node): redis-py
    asks through this parser method (private: pinned here), for commands whose keys move."""
    if not is_cluster(client):
        yield
        return

    def refuse(*args):
        raise AssertionError(f"COMMAND GETKEYS asked for {args[1:]}")

    client.commands_parser._get_moveable_keys = refuse
    try:
        yield
    finally:
        del client.commands_parser._get_moveable_keys


def test_a_read_answers_as_xread_would_per_stream(redis_client, prefix):
    keys = Keys(prefix)
    cluster = is_cluster(redis_client)
    streams = {keys.events(new_stream_id()).encode(): b"0-0" for _ in range(12)}
    for i, key in enumerate(streams):
        for seq in range(1, i % 3 + 1):  # some streams empty, some with one or two entries
            redis_client.xadd(key, {"t": "delta", "d": f'{{"text":"{seq}"}}'}, id=f"0-{seq}")
    cursors = {key: b"0-1" if i % 4 == 0 else b"0-0" for i, key in enumerate(streams)}
    with no_keys_asked(redis_client):
        read = read_streams(redis_client, cursors, cluster=cluster)
    expected = [reply for key, cursor in cursors.items() for reply in (redis_client.xread({key: cursor}) or [])]
    assert sorted(read) == sorted(expected) and len(read) == 7
    assert read_streams(redis_client, {key: b"0-2" for key in streams}, cluster=cluster) == []
