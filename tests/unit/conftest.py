"""Unit-tier fixtures: the stream store on both backends."""

from __future__ import annotations

import fakeredis
import pytest
import redis

from spool.keys import Keys
from spool.store import StreamStore

TTL = 3600


@pytest.fixture(params=["fakeredis", "redis"])
def redis_client(request, prefix):
    """The same contract, run on fakeredis and on the real Redis."""
    if request.param == "fakeredis":
        client = fakeredis.FakeRedis()
        yield client
        return
    url = request.getfixturevalue("redis_url")
    client = redis.Redis.from_url(url, protocol=2)
    yield client
    keys = list(client.scan_iter(match=f"{prefix}:*", count=1000))
    if keys:
        client.delete(*keys)
    client.close()


@pytest.fixture
def store(redis_client, prefix) -> StreamStore:
    return StreamStore(redis_client, Keys(prefix), TTL)


@pytest.fixture
def hub(redis_client, prefix):
    """A TailHub on the same backend; on real Redis its XREAD gets its own connection."""
    from spool.tail import TailHub

    if isinstance(redis_client, fakeredis.FakeRedis):
        factory = lambda: redis_client  # noqa: E731
    else:
        url = redis_client.connection_pool.connection_kwargs
        factory = lambda: redis.Redis(host=url["host"], port=url["port"], db=url.get("db", 0), protocol=2)  # noqa: E731
    hub = TailHub(redis_client, factory, f"{prefix}:wake", block_ms=1000)
    yield hub
    hub.stop()
