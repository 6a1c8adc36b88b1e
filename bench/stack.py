"""Starting the benchmark's stack: private Redis, mock upstream, spool
gateway(s) and worker(s), the direct proxy, and (when asked) the
resumable-stream peer."""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass
from importlib.util import find_spec
from pathlib import Path

import redis
from rq.registry import StartedJobRegistry

from bench import cluster as bench_cluster
from bench import resumable_peer
from bench.procs import Fleet, Proc, free_port
from bench.load import Target


@dataclass
class BenchStack:
    """The running processes and where to reach them."""

    redis: redis.Redis
    redis_port: int
    targets: dict[str, Target]
    procs: list[Proc]  # the measured ones
    started_key: str  # RQ's registry of running generations


def start(fleet: Fleet, *, ttft_ms: float, tokens_per_second: float, tokens: int, workers: int,
          worker_concurrency: int, gateway_workers: int, coalesce_ms: float | None = None,
          peer: bool = False, streams_cluster: bool = False) -> BenchStack:
    """Start everything (the resumable-stream peer too when `peer`, the streams
    on a 3-master cluster when `streams_cluster`); returns once each process answers."""
    redis_proc, redis_url = fleet.redis()
    streams = bench_cluster.start(fleet) if streams_cluster else None
    port = int(redis_url.rsplit(":", 1)[1].split("/")[0])
    mock, mock_url = fleet.mock(ttft_ms=ttft_ms, tokens_per_second=tokens_per_second, tokens=tokens)
    prefix = f"bench{uuid.uuid4().hex[:6]}"
    env = {
        "REDIS_URL": redis_url, "SPOOL_KEY_PREFIX": prefix, "SPOOL_QUEUE": prefix,
        "OPENAI_BASE_URL": mock_url, "OPENAI_API_KEY": "mock", "SPOOL_DEFAULT_MODEL": "mock",
        "SPOOL_UPSTREAM_MAX_RETRIES": "0", "SPOOL_LOG_LEVEL": "WARNING",
        "SPOOL_GATEWAY_CONNECTIONS": "20000",
        "SPOOL_ALLOW_OPEN": "1",  # no keys: the gateway runs open only when told to
    }
    if coalesce_ms is not None:
        env["SPOOL_COALESCE_MS"] = str(coalesce_ms)
    if streams:
        env["SPOOL_STREAMS_REDIS_URL"] = streams.url
    client = redis.Redis.from_url(redis_url)
    worker_procs = []
    for i in range(workers):
        name = f"{prefix}-w{i}"
        proc = fleet.spool(f"worker{i}", ["worker", "--concurrency", str(worker_concurrency), "--name", name], env)
        fleet.wait(proc, lambda: client.exists(f"rq:worker:{name}"), f"worker {name}")
        worker_procs.append(proc)
    gateway_port = free_port()
    config = str(Path(find_spec("gateway").origin).parent / "gunicorn_conf.py")
    gateway = fleet.gunicorn("gateway", "gateway:create_app()", gateway_port, gateway_workers, env, config)
    direct_port = free_port()
    direct = fleet.gunicorn("direct", "bench.direct_proxy:create_app()", direct_port, 1,
                            {"OPENAI_BASE_URL": mock_url, "OPENAI_API_KEY": "mock"})
    targets = {
        "mock": Target("mock", mock_url),
        "direct": Target("direct", f"http://127.0.0.1:{direct_port}"),
        "spool": Target("spool", f"http://127.0.0.1:{gateway_port}"),
    }
    peer_procs: list[Proc] = []
    if peer:
        targets["resumable"], peer_procs = resumable_peer.start(fleet, mock_url)
    time.sleep(0.5)  # let the gevent workers finish importing before timing starts
    return BenchStack(
        redis=streams.metered(client) if streams else client,
        redis_port=port,
        targets=targets,
        procs=[gateway, *worker_procs, redis_proc, *(streams.procs if streams else []), mock, direct, *peer_procs],
        started_key=StartedJobRegistry(prefix, connection=client).key,
    )
