"""What the routes need, built once per process and kept in app.extensions."""

from __future__ import annotations

from dataclasses import dataclass

from flask import current_app
from rq import Queue

from spool.keys import Keys
from spool.queueing import spool_queue
from spool.redis_client import connect, connect_queue, is_cluster_url, pubsub_factory
from spool.redis_polls import check_connections_without_yielding
from spool.settings import Settings
from spool.streams import StreamStore
from spool.hub import TailHub

# Gateway commands are short; a few pooled connections serve thousands of
# clients (they wait for a free one), keeping Redis' connection count fixed
# (on a cluster: per node, plus the hub's one subscription per node).
POOL_CONNECTIONS = 8


@dataclass(frozen=True)
class Services:
    """The gateway's clients: the streams' Redis pool (`redis`), the RQ queue
    (on the queue's Redis, often the same), the tail hub."""

    settings: Settings
    redis: redis.Redis
    store: StreamStore
    queue: Queue
    hub: TailHub

    @classmethod
    def build(cls, settings: Settings, client: redis.Redis | None = None) -> Services:
        if client is None:
            check_connections_without_yielding()
            client = connect(settings.streams_url, max_connections=POOL_CONNECTIONS)
            shared = settings.streams_url == settings.redis_url and not is_cluster_url(settings.redis_url)
            queue_client = client if shared else connect_queue(settings.redis_url, max_connections=POOL_CONNECTIONS)
            pubsub = pubsub_factory(settings.streams_url, client)
        else:
            queue_client = client
            pubsub = lambda node: client  # noqa: E731  (fakeredis: one in-process server)
        keys = Keys(settings.key_prefix)
        return cls(
            settings=settings,
            redis=client,
            store=StreamStore(client, keys, settings.stream_ttl),
            queue=spool_queue(settings.queue, queue_client),
            hub=TailHub(client, pubsub),
        )


def services() -> Services:
    """The current app's services."""
    return current_app.extensions["spool"]
