"""spool/redis_client.py: the URLs it accepts and the clients it builds."""

from __future__ import annotations

import pytest
import redis
from redis.cluster import RedisCluster

from spool.redis_client import _parse, connect, connect_queue, is_cluster_url


def test_cluster_urls_name_seed_nodes_and_credentials():
    target = _parse("rediss+cluster://user:p%40ss@10.0.0.1:7000,node-2:7001")
    assert target.tls and target.hosts == [("10.0.0.1", 7000), ("node-2", 7001)]
    assert (target.username, target.password) == ("user", "p@ss")
    assert is_cluster_url("redis+cluster://a:1") and not is_cluster_url("redis://a:1/0")


def test_sentinel_urls_name_the_service_and_database():
    target = _parse("redis+sentinel://:secret@s1:26379,s2:26379,s3:26379/spool/2")
    assert not target.tls and [h for h, _ in target.hosts] == ["s1", "s2", "s3"]
    assert (target.service, target.db, target.password) == ("spool", 2, "secret")
    assert _parse("redis+sentinel://s1:26379/main").db == 0


@pytest.mark.parametrize("url", [
    "redis+cluster://node",  # no port
    "redis+cluster://a:1/0",  # a cluster has no databases
    "redis+sentinel://s1:26379",  # no service
    "redis+sentinel://s1:26379/spool/x",  # db not a number
])
def test_malformed_urls_are_refused_with_a_reason(url):
    with pytest.raises(ValueError):
        _parse(url)


def test_the_queue_refuses_a_cluster():
    with pytest.raises(ValueError, match="SPOOL_STREAMS_REDIS_URL"):
        connect_queue("redis+cluster://127.0.0.1:7000")


def test_a_cluster_client_bounds_each_nodes_pool_and_waits_for_a_connection(redis_cluster):
    client = connect(redis_cluster.url, max_connections=3)
    try:
        assert isinstance(client, RedisCluster)
        client.set("t-rc:{a}", "1")
        pools = [node.redis_connection.connection_pool for node in client.get_primaries()
                 if node.redis_connection is not None]
        assert pools
        for pool in pools:
            # A full pool makes callers wait (BlockingConnectionPool), never grows past 3.
            assert isinstance(pool, redis.BlockingConnectionPool) and pool.max_connections == 3
            assert pool.connection_kwargs["protocol"] == 2
        client.delete("t-rc:{a}")
    finally:
        client.close()
