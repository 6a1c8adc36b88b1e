"""Redis clients with explicit settings.

redis-py 8's defaults do not fit spool: a 5 s socket timeout (a long blocking
read would fail), a pool that raises past 100 connections, and RESP3 replies
whose shapes differ from fakeredis'. Every client spool opens comes from here.
"""

from __future__ import annotations

import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

# Commands other than blocking reads answer in milliseconds; 10 s means Redis is gone.
COMMAND_TIMEOUT = 10.0


def connect(url: str, *, max_connections: int = 32) -> redis.Redis:
    """A pooled client for ordinary commands; callers wait for a free connection
    rather than fail when all are busy."""
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


def connect_blocking(url: str, *, block_seconds: float) -> redis.Redis:
    """A client on one dedicated connection, for commands that block up to
    `block_seconds` (XREAD BLOCK, pub/sub reads)."""
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
    silently, and the messages published meanwhile would be lost unnoticed."""
    return redis.Redis.from_url(
        url,
        max_connections=1,
        socket_timeout=COMMAND_TIMEOUT,
        socket_connect_timeout=COMMAND_TIMEOUT,
        retry=Retry(NoBackoff(), 0),
        protocol=2,
    )
