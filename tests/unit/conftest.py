"""Unit-tier fixtures: the stream store on every backend: fakeredis, the real
Redis, and `spool dev`'s embedded valkey-server (so dev cannot drift from
production again); and `make_app`, the one way the unit tests build a gateway."""

from __future__ import annotations

import fakeredis
import pytest
import redis

from spool.keys import Keys, new_stream_id
from spool.redis_client import connect, is_cluster
from spool.redis_client import pubsub_factory as node_pubsub_factory
from spool.streams import StreamStore

TTL = 3600


@pytest.fixture(scope="session")
def embedded_redis_url():
    """One embedded valkey-server (cli/embedded_redis.py) for the session."""
    from cli.embedded_redis import EmbeddedRedis

    with EmbeddedRedis() as server:
        yield server.url


@pytest.fixture(params=["fakeredis", "redis", "embedded"])
def redis_client(request, prefix):
    """The same contract, run on fakeredis, the real Redis and the embedded server."""
    yield from backend(request, prefix)


def backend(request, prefix):
    """A client of the backend `request.param` names: fakeredis, the real
    Redis, `spool dev`'s embedded server, or (`cluster`) a real 3-master
    Redis Cluster shared by the session. The contract suites override
    redis_client with all four."""
    if request.param == "fakeredis":
        yield fakeredis.FakeRedis()
        return
    if request.param == "cluster":
        client = connect(request.getfixturevalue("redis_cluster").url, max_connections=8)
    else:
        url = request.getfixturevalue("redis_url" if request.param == "redis" else "embedded_redis_url")
        client = redis.Redis.from_url(url, protocol=2)
    yield client
    keys = list(client.scan_iter(match=f"{prefix}:*", count=1000))
    for key in keys:  # one by one: on a cluster they live in many slots
        client.delete(key)
    client.close()


@pytest.fixture
def make_app(prefix):
    """Build gateway apps: `make_app(**settings)` on a fresh fakeredis, or on
    `redis_client=` a client of the test's; the keys and the queue are under
    the test's prefix. Every app's hub is stopped after the test."""
    from gateway import create_app

    apps = []

    def make(*, redis_client=None, **config):
        client = fakeredis.FakeRedis() if redis_client is None else redis_client
        app = create_app({"key_prefix": prefix, "queue": prefix, **config}, redis_client=client)
        apps.append(app)
        return app

    yield make
    for app in apps:
        app.extensions["spool"].hub.stop()


@pytest.fixture
def store(redis_client, prefix) -> StreamStore:
    return StreamStore(redis_client, Keys(prefix), TTL)


@pytest.fixture
def pubsub_factory(redis_client, request):
    """Clients for the hub's subscription; on real Redis each gets its own connection."""
    if isinstance(redis_client, fakeredis.FakeRedis):
        return lambda node="": redis_client
    if is_cluster(redis_client):
        return node_pubsub_factory(request.getfixturevalue("redis_cluster").url, redis_client)
    url = redis_client.connection_pool.connection_kwargs
    return lambda node="": redis.Redis(host=url["host"], port=url["port"], db=url.get("db", 0), protocol=2)


@pytest.fixture
def hub(redis_client, pubsub_factory, store):
    """A TailHub on the same backend, listening on the store's activity channels."""
    from spool.hub import TailHub

    hub = TailHub(redis_client, pubsub_factory)
    yield hub
    hub.stop()


def started_stream(store: StreamStore, writer: str = "w") -> str:
    """A new stream as `writer`'s lease leaves it: claimed, its seq 1 `start`."""
    sid = new_stream_id()
    store.create(sid, {"messages": [{"role": "user", "content": "hi"}], "model": "m"})
    assert store.leases.acquire(sid, 30, writer).claimed
    return sid
