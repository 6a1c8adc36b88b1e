"""Unit-tier fixtures: the stream store on every backend: fakeredis, the real
Redis, and `spool dev`'s embedded valkey-server (so dev cannot drift from
production again)."""

from __future__ import annotations

import fakeredis
import pytest
import redis

from spool.keys import Keys
from spool.store import StreamStore

TTL = 3600


@pytest.fixture(scope="session")
def embedded_redis_url():
    """One embedded valkey-server (spool/embedded_redis.py) for the session."""
    from spool.embedded_redis import EmbeddedRedis

    with EmbeddedRedis() as server:
        yield server.url


@pytest.fixture(params=["fakeredis", "redis", "embedded"])
def redis_client(request, prefix):
    """The same contract, run on fakeredis, the real Redis and the embedded server."""
    if request.param == "fakeredis":
        client = fakeredis.FakeRedis()
        yield client
        return
    url = request.getfixturevalue("redis_url" if request.param == "redis" else "embedded_redis_url")
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
def pubsub_factory(redis_client):
    """Clients for the hub's subscription; on real Redis each gets its own connection."""
    if isinstance(redis_client, fakeredis.FakeRedis):
        return lambda: redis_client
    url = redis_client.connection_pool.connection_kwargs
    return lambda: redis.Redis(host=url["host"], port=url["port"], db=url.get("db", 0), protocol=2)


@pytest.fixture
def hub(redis_client, pubsub_factory, store):
    """A TailHub on the same backend, listening on the store's activity channel."""
    from spool.tail import TailHub

    hub = TailHub(redis_client, pubsub_factory, store.keys.activity_channel)
    yield hub
    hub.stop()
