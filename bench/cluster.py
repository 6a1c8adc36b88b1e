"""`python -m bench --streams-cluster`: the streams on a 3-master Redis
Cluster that the benchmark starts and stops itself, the queue on the plain
Redis, and each master's CPU per phase.

The cluster's six nodes (bench/redis_topologies.py) join the Fleet as
processes: the Fleet stops them with the rest, and the Meter reads their CPU
from /proc like any other. Masters are the roles `redis-m1`..`redis-m3`, so
the table's `redis` column (a role prefix) sums the queue's Redis and the
three masters, as spool's serving cost; replicas (`replica-1`..) only copy
the masters' writes and are reported apart.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import redis

from bench.procs import Fleet, Proc
from bench.redis_topologies import RedisCluster3
from bench.report import Row


@dataclass
class StreamsCluster:
    """A started cluster: spool's URL for it, its nodes as Fleet processes and
    a client per master."""

    url: str
    procs: list[Proc]
    masters: list[redis.Redis] = field(default_factory=list)

    def metered(self, queue: redis.Redis) -> MeteredRedis:
        """The client the Meter reads INFO from: the queue's and the masters' summed."""
        return MeteredRedis(queue, self.masters)


def start(fleet: Fleet) -> StreamsCluster:
    """Start a 3-master, 3-replica cluster in the Fleet's log directory (its
    nodes' logs stay there) and register its nodes with the Fleet."""
    cluster = RedisCluster3(fleet.log_dir / "cluster", "--maxclients", "20000").start()
    masters = cluster.masters()
    replicas = [p for p in cluster.ports if p not in masters]
    procs = []
    for role, port in [*((f"redis-m{i}", p) for i, p in enumerate(masters, 1)),
                       *((f"replica-{i}", p) for i, p in enumerate(replicas, 1))]:
        popen = cluster.servers.processes[port]
        proc = Proc(role, popen, cluster.servers.directory / str(port) / "redis.log", [popen.pid])
        fleet.procs.append(proc)
        procs.append(proc)
    return StreamsCluster(cluster.url, procs, [redis.Redis(port=p) for p in masters])


class MeteredRedis:
    """The queue's client, except that INFO memory and commandstats are summed
    over it and every master, so the Meter's Redis commands and memory per
    token count the streams' Redis too. Everything else (the registry of
    running jobs) is the queue's."""

    def __init__(self, queue: redis.Redis, masters: list[redis.Redis]) -> None:
        self._queue = queue
        self._all = [queue, *masters]

    def info(self, section: str) -> dict[str, Any]:
        replies = [client.info(section) for client in self._all]
        if section == "memory":
            return {"used_memory": sum(r["used_memory"] for r in replies)}
        if section == "commandstats":
            calls: dict[str, int] = {}
            for reply in replies:
                for name, stats in reply.items():
                    calls[name] = calls.get(name, 0) + stats["calls"]
            return {name: {"calls": n} for name, n in calls.items()}
        raise ValueError(f"INFO {section} is not summed over the cluster")

    def __getattr__(self, name: str) -> Any:
        return getattr(self._queue, name)


def master_cpu(rows: list[Row]) -> str:
    """Per phase of spool: each master's Redis CPU and its share, the masters'
    total, the queue's Redis and the replicas."""
    out = []
    for r in rows:
        masters = sorted(role for role in r.cost.roles if role.startswith("redis-m"))
        if r.target != "spool" or not masters:
            continue
        total = sum(r.cost.roles[m].cpu for m in masters)
        each = ", ".join(f"{m.removeprefix('redis-')} {r.cost.roles[m].cpu:.2f} s"
                         f" ({100 * r.cost.roles[m].cpu / total if total else 0:.0f}%)" for m in masters)
        out.append(f"{r.phase}/spool: Redis CPU per master {each}; masters {total:.2f} s "
                   f"({1e6 * total / max(r.tokens, 1):.1f} µs/token); queue Redis {r.cpu(('redis',)) - total:.2f} s; "
                   f"replicas {r.cpu(('replica',)):.2f} s")
    return "\n".join(out)
