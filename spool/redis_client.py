"""Redis clients with explicit settings, on one Redis, a Sentinel-managed
master or a Redis Cluster.

redis-py 8's defaults do not fit spool: a 5 s socket timeout (a long blocking
read would fail), a pool that raises past 100 connections, and RESP3 replies
whose shapes differ from fakeredis'. Every client spool opens comes from here.

URLs (settings REDIS_URL and SPOOL_STREAMS_REDIS_URL):
- `redis://host:port/db`, `rediss://...`, `unix://...`: one Redis;
- `redis+sentinel://host:port[,host:port...]/<service>[/db]` (or
  `rediss+sentinel://`): the master the sentinels name for `<service>`,
  followed across failovers;
- `redis+cluster://host:port[,host:port...]` (or `rediss+cluster://`): a
  Redis Cluster found from those seed nodes; `max_connections` then bounds
  the pool of each node.
Passwords go in the URL's user info, as in `redis://:secret@host:port`; for a
cluster or sentinel they apply to every node.
"""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import unquote, urlsplit

import redis
from redis.backoff import ExponentialWithJitterBackoff, NoBackoff
from redis.cluster import ClusterNode, RedisCluster
from redis.retry import Retry
from redis.sentinel import Sentinel, SentinelConnectionPool

# Commands other than blocking reads answer in milliseconds; 10 s means Redis is gone.
COMMAND_TIMEOUT = 10.0

# Attempts at a cluster command before its error is raised: about 8 s of
# backoff, more than a failover takes with cluster-node-timeout of 5 s.
CLUSTER_RETRIES = 20

CLUSTER_SCHEMES = ("redis+cluster", "rediss+cluster")
SENTINEL_SCHEMES = ("redis+sentinel", "rediss+sentinel")


@dataclass(frozen=True)
class _MultiHost:
    """A cluster or sentinel URL, parsed."""

    tls: bool
    hosts: list[tuple[str, int]]
    username: str | None
    password: str | None
    service: str = ""
    db: int = 0


def is_cluster_url(url: str) -> bool:
    """True for a `redis+cluster://` or `rediss+cluster://` URL."""
    return url.split("://", 1)[0] in CLUSTER_SCHEMES


def _parse(url: str) -> _MultiHost:
    parts = urlsplit(url)
    hosts = []
    for seed in parts.netloc.rpartition("@")[2].split(","):
        host, _, port = seed.rpartition(":")
        if not host or not port.isdigit():
            raise ValueError(f"{parts.scheme} URL needs host:port seeds, got {seed!r}")
        hosts.append((host.strip("[]"), int(port)))
    user_info = parts.netloc.rpartition("@")[0]
    username, _, password = user_info.partition(":")
    path = [p for p in parts.path.split("/") if p]
    service, db = "", 0
    if parts.scheme in SENTINEL_SCHEMES:
        if not path or len(path) > 2 or (len(path) == 2 and not path[1].isdigit()):
            raise ValueError(f"{parts.scheme} URL needs /<service>[/db], got {parts.path!r}")
        service, db = path[0], int(path[1]) if len(path) == 2 else 0
    elif path:
        raise ValueError(f"{parts.scheme} URL takes no path (a cluster has one database), got {parts.path!r}")
    return _MultiHost(parts.scheme.startswith("rediss"), hosts, unquote(username) or None,
                      unquote(password) or None, service, db)


def _credentials(target: _MultiHost) -> dict:
    return {"username": target.username, "password": target.password}


def connect(url: str, *, max_connections: int = 32) -> redis.Redis:
    """A pooled client for ordinary commands; callers wait for a free connection
    rather than fail when all are busy. On a cluster it is a RedisCluster whose
    pool per node holds at most `max_connections`."""
    scheme = url.split("://", 1)[0]
    if scheme in CLUSTER_SCHEMES:
        target = _parse(url)
        (first_host, first_port), *others = target.hosts
        return RedisCluster(
            # Given a URL, RedisCluster builds each node's pool from
            # connection_pool_class (a blocking one); otherwise it ignores it.
            url=f"{'rediss' if target.tls else 'redis'}://{first_host}:{first_port}",
            startup_nodes=[ClusterNode(host, port) for host, port in others],
            connection_pool_class=_ClusterNodePool,
            max_connections=max_connections,
            socket_timeout=COMMAND_TIMEOUT,
            socket_connect_timeout=COMMAND_TIMEOUT,
            health_check_interval=30,
            protocol=2,
            # Cluster-level retries (a refreshed slot map each time) outlast a
            # failover of a few seconds; each node's connections never retry.
            retry=Retry(ExponentialWithJitterBackoff(base=0.05, cap=0.5), retries=CLUSTER_RETRIES),
            **_credentials(target),
        )
    if scheme in SENTINEL_SCHEMES:
        return _sentinel_master(url, max_connections=max_connections, socket_timeout=COMMAND_TIMEOUT)
    pool = redis.BlockingConnectionPool.from_url(
        url,
        max_connections=max_connections,
        timeout=COMMAND_TIMEOUT,
        socket_timeout=COMMAND_TIMEOUT,
        socket_connect_timeout=COMMAND_TIMEOUT,
        health_check_interval=30,
        protocol=2,
    )
    return redis.Redis(connection_pool=pool)


class _ClusterNodePool(redis.BlockingConnectionPool):
    """A cluster node's pool: callers wait up to COMMAND_TIMEOUT for a free
    connection (RedisCluster passes no `timeout` through to its pools)."""

    def __init__(self, **kwargs) -> None:
        super().__init__(timeout=COMMAND_TIMEOUT, **kwargs)


def connect_queue(url: str, *, max_connections: int = 32) -> redis.Redis:
    """The RQ queue's client (connect's settings). RQ's commands span many
    keys, so its Redis is one server or a Sentinel-managed master, never a
    cluster: streams go on a cluster through SPOOL_STREAMS_REDIS_URL."""
    if is_cluster_url(url):
        raise ValueError("REDIS_URL (the queue's Redis) cannot be a cluster URL; "
                         "put the streams on the cluster with SPOOL_STREAMS_REDIS_URL")
    return connect(url, max_connections=max_connections)


class _BlockingSentinelPool(SentinelConnectionPool, redis.BlockingConnectionPool):
    """The sentinel's pool of master connections, waiting for a free one
    instead of raising past max_connections (SentinelConnectionPool derives
    from the raising ConnectionPool)."""


def _sentinel_master(url: str, *, max_connections: int, socket_timeout: float, **extra) -> redis.Redis:
    target = _parse(url)
    tls = {"ssl": True} if target.tls else {}
    sentinel = Sentinel(
        target.hosts,
        socket_timeout=COMMAND_TIMEOUT,
        socket_connect_timeout=COMMAND_TIMEOUT,
        sentinel_kwargs={"socket_timeout": COMMAND_TIMEOUT, "socket_connect_timeout": COMMAND_TIMEOUT,
                         "protocol": 2, **tls, **_credentials(target)},
        protocol=2,
    )
    return sentinel.master_for(
        target.service,
        connection_pool_class=_BlockingSentinelPool,
        max_connections=max_connections,
        timeout=COMMAND_TIMEOUT,
        db=target.db,
        socket_timeout=socket_timeout,
        socket_connect_timeout=COMMAND_TIMEOUT,
        protocol=2,
        **tls,
        **_credentials(target),
        **extra,
    )


def connect_blocking(url: str, *, block_seconds: float) -> redis.Redis:
    """A client on one dedicated connection, for commands that block up to
    `block_seconds` (XREAD BLOCK, pub/sub reads). Not for a cluster URL: a
    blocking read is for one node (see node_client)."""
    if url.split("://", 1)[0] in SENTINEL_SCHEMES:
        return _sentinel_master(url, max_connections=1, socket_timeout=block_seconds + COMMAND_TIMEOUT)
    return redis.Redis.from_url(
        url,
        single_connection_client=True,
        socket_timeout=block_seconds + COMMAND_TIMEOUT,
        socket_connect_timeout=COMMAND_TIMEOUT,
        protocol=2,
    )


def connect_pubsub(url: str) -> redis.Redis:
    """A client for one pub/sub subscription, which takes the pool's single
    connection. It never reconnects by itself: redis-py would resubscribe
    silently, and the messages published meanwhile would be lost unnoticed.
    For a cluster, see node_client."""
    if url.split("://", 1)[0] in SENTINEL_SCHEMES:
        return _sentinel_master(url, max_connections=1, socket_timeout=COMMAND_TIMEOUT,
                                retry=Retry(NoBackoff(), 0))
    return redis.Redis.from_url(
        url,
        max_connections=1,
        socket_timeout=COMMAND_TIMEOUT,
        socket_connect_timeout=COMMAND_TIMEOUT,
        retry=Retry(NoBackoff(), 0),
        protocol=2,
    )


def is_cluster(client) -> bool:
    """True when `client` (or what it wraps) speaks to a Redis Cluster."""
    return hasattr(client, "get_node_from_key")


def node_of(client: redis.Redis, key: str | bytes) -> str:
    """The name of the node serving `key` ('' on a single Redis): shard
    channels are subscribed on that node."""
    if is_cluster(client):
        return client.get_node_from_key(key).name
    return ""


def pubsub_factory(url: str, client: redis.Redis):
    """A function from a node name (node_of) to a fresh pub/sub client on that
    node, with connect_pubsub's settings: on a cluster it connects to the
    node itself, with the cluster client's credentials and TLS."""
    if not isinstance(client, RedisCluster):
        return lambda node="": connect_pubsub(url)
    kwargs = client.nodes_manager.connection_kwargs

    def factory(node: str = "") -> redis.Redis:
        host, _, port = node.rpartition(":")
        return redis.Redis(
            host=host,
            port=int(port),
            max_connections=1,
            socket_timeout=COMMAND_TIMEOUT,
            socket_connect_timeout=COMMAND_TIMEOUT,
            retry=Retry(NoBackoff(), 0),
            protocol=2,
            username=kwargs.get("username"),
            password=kwargs.get("password"),
            **({"ssl": True} if issubclass(kwargs.get("connection_class", redis.Connection), redis.SSLConnection)
               else {}),
        )

    return factory
