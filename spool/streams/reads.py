"""The TailHub's reads: followed streams' entries past their cursors, in
XREAD's reply shape (RESP2, as redis-py parses it: [[key, [(id, {field:
value}), ...]], ...]).

On one Redis: one XREAD. On a cluster: one read per slot, pipelined (the
cluster client groups them by node and follows MOVED/ASK), by a script
(lua/read.lua) rather than XREAD, and named to its slot's node. redis-py's
cluster client routes a command whose keys move (XREAD; EVALSHA too, in a
pipeline) only after asking its default node `COMMAND GETKEYS`, a
synchronous round trip each: that node then did 60-72% of the masters' work
(docs/benchmarks.md). A script names its keys, so its node can be named.
"""

from __future__ import annotations

from typing import Any

import redis
from redis.crc import key_slot

from spool.streams.scripts import Scripts, evalsha, retried


def read_streams(client: redis.Redis, streams: dict[bytes, bytes], *, cluster: bool) -> list:
    """The entries of `streams` (key -> cursor) past their cursors, as XREAD
    answers; `cluster`: `client` is a cluster client. Raises RedisError."""
    if not cluster:
        return client.xread(streams) or []
    script = Scripts.register(client).read
    by_slot: dict[int, dict[bytes, bytes]] = {}
    for key, cursor in streams.items():
        by_slot.setdefault(key_slot(key), {})[key] = cursor
    calls = [(list(group), list(group.values())) for group in by_slot.values()]
    with client.pipeline(transaction=False) as pipe:
        for keys, args in calls:
            evalsha(pipe, script, keys, args, routed=True)
        replies = pipe.execute(raise_on_error=False)
    read = []
    for (keys, args), reply in zip(calls, replies):
        reply = retried(reply, script, keys, args)
        if isinstance(reply, Exception):
            raise reply
        read += [[key, [(entry_id, _fields(flat)) for entry_id, flat in entries]] for key, entries in reply or []]
    return read


def _fields(flat: list[Any]) -> dict[Any, Any]:
    """An entry's fields, as XREAD's reply parser makes them: a dict."""
    return dict(zip(flat[::2], flat[1::2]))
