"""`python -m bench --streams-cluster`'s accounting: the masters count as
spool's Redis, the replicas apart; INFO summed over the queue and the masters."""

from __future__ import annotations

from bench.cluster import MeteredRedis, master_cpu
from bench.load import StreamResult
from bench.measure import Cost, PhaseCost
from bench.report import summarize

ROLES = {"gateway": 1.0, "worker0": 2.0, "redis": 0.5, "redis-m1": 0.25, "redis-m2": 1.0, "redis-m3": 0.25,
         "replica-1": 0.125, "replica-2": 0.125, "mock": 8.0}


def test_the_masters_are_spools_redis_and_each_ones_share_is_reported():
    cost = PhaseCost(roles={role: Cost(cpu=cpu) for role, cpu in ROLES.items()})
    row = summarize("load-2", "spool", [StreamResult(exact=True, ttft=0.1, started=0)] * 2, 100, 1.0, cost)
    # Serving CPU: gateway, worker, the queue's Redis and the masters; not the replicas.
    assert row.cpu_us_per_token == 1e6 * (1.0 + 2.0 + 0.5 + 1.5) / 200
    assert master_cpu([row]) == (
        "load-2/spool: Redis CPU per master m1 0.25 s (17%), m2 1.00 s (67%), m3 0.25 s (17%); "
        "masters 1.50 s (7500.0 µs/token); queue Redis 0.50 s; replicas 0.25 s")


class Node:
    """INFO as a Redis answers it, and one other command."""

    def __init__(self, memory: int, calls: dict[str, int]) -> None:
        self._info = {"memory": {"used_memory": memory, "used_memory_rss": 1},
                      "commandstats": {f"cmdstat_{k}": {"calls": v, "usec": 1} for k, v in calls.items()}}

    def info(self, section: str) -> dict:
        return self._info[section]

    def zcard(self, key: str) -> int:
        return 7


def test_info_is_summed_over_the_queue_and_the_masters():
    queue = Node(100, {"lmove": 2, "hset": 1})
    metered = MeteredRedis(queue, [Node(10, {"hset": 4, "xread": 3}), Node(1, {"evalsha": 5})])
    assert metered.info("memory") == {"used_memory": 111}
    assert metered.info("commandstats") == {"cmdstat_lmove": {"calls": 2}, "cmdstat_hset": {"calls": 5},
                                            "cmdstat_xread": {"calls": 3}, "cmdstat_evalsha": {"calls": 5}}
    assert metered.zcard("started") == 7  # everything else is the queue's
