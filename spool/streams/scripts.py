"""The Lua scripts: read from lua/*.lua once, registered once per client.

Each script names its KEYS and ARGV in locals at its top. The loader puts one
line before each: `TERMINAL`, the set of terminal statuses, generated from
StreamStatus, so the scripts and Python share one definition of the end of a
stream.

Scripts run through redis-py's `Script` (EVALSHA, loading the script on a
NoScriptError). In a pipeline they are queued by SHA with `evalsha`; the
caller retries a NoScriptError reply with the Script itself (Redis restarted
and forgot its scripts).
"""

from __future__ import annotations

import functools
import weakref
from dataclasses import dataclass
from importlib import resources
from typing import Any

import redis
from redis.commands.core import Script

from spool.events import StreamStatus
from spool.redis_client import is_cluster

NAMES = ("append", "cancel", "fail", "acquire", "renew", "reclaim", "rerun", "read", "rate", "admit")


def terminal_prelude() -> str:
    """The Lua line defining TERMINAL from StreamStatus.is_terminal."""
    members = ", ".join(f"{status.value} = true" for status in StreamStatus if status.is_terminal)
    return f"local TERMINAL = {{{members}}}\n"


@functools.cache
def source(name: str) -> str:
    """The text of script `name` as it runs: the prelude, then lua/<name>.lua."""
    return terminal_prelude() + resources.files(__package__).joinpath("lua", f"{name}.lua").read_text()


@dataclass(frozen=True)
class Scripts:
    """Every script, registered on one client (a Script holds its SHA)."""

    append: Script
    cancel: Script
    fail: Script
    acquire: Script
    renew: Script
    reclaim: Script
    rerun: Script
    read: Script
    rate: Script
    admit: Script

    @classmethod
    def register(cls, client: redis.Redis) -> Scripts:
        """Every script registered on `client`, once per client (no round
        trip: a Script computes its SHA locally and loads itself on NOSCRIPT)."""
        scripts = _registered.get(client)
        if scripts is None:
            scripts = _registered[client] = cls(**{name: client.register_script(source(name)) for name in NAMES})
        return scripts


_registered: weakref.WeakKeyDictionary[Any, Scripts] = weakref.WeakKeyDictionary()


def evalsha(pipe: redis.client.Pipeline, script: Script, keys: list[str], args: list[Any], *,
            routed: bool = False) -> None:
    """Queue `script` on `pipe` by its SHA (the caller retries a NoScriptError
    with the Script, which loads it). Not pipe.evalsha: a Script on a pipeline
    asks SCRIPT EXISTS first every time, and redis-py's cluster pipeline
    refuses its evalsha method, though Redis routes EVALSHA by its keys.

    `routed`: on a cluster pipeline, name the node of the keys' slot.
    Unnamed, the pipeline asks its default node `COMMAND GETKEYS` for every
    EVALSHA (whose keys move), a synchronous round trip each (a MOVED reply
    is retried without the name). The TailHub's reads use it
    (spool/streams/reads.py); the worker's appends and leases not yet: with
    it, the cluster bench's resume phase was slower in 3 runs of 3
    (docs/benchmarks.md, "Streams on a 3-master cluster")."""
    options = {}
    if routed and is_cluster(pipe):
        options["target_nodes"] = pipe.get_node_from_key(keys[0])
    pipe.execute_command("EVALSHA", script.sha, len(keys), *keys, *args, **options)


def retried(reply: Any, script: Script, keys: list[str], args: list[Any]) -> Any:
    """A pipelined reply, with a NoScriptError (Redis restarted) retried by
    the Script, which reloads it; other errors are returned, not raised."""
    if isinstance(reply, redis.exceptions.NoScriptError):
        try:
            return script(keys=keys, args=args)
        except redis.ResponseError as exc:
            return exc
    return reply
