"""SPOOL_STREAMS_REDIS_URL: stream traffic on its own Redis, the queue on REDIS_URL."""

from __future__ import annotations

import pytest
import redis

from mock_upstream import expected_text
from tests.client import chat, post_stream, read

pytestmark = pytest.mark.integration


def test_streams_live_on_their_own_redis_and_the_queue_on_redis_url(stack_factory, redis_url):
    # Database 1 of the test Redis stands in for a second server.
    streams_url = redis_url.rsplit("/", 1)[0] + "/1"
    stack = stack_factory(env={"SPOOL_STREAMS_REDIS_URL": streams_url},
                          mock_args=["--ttft-ms", "10", "--tokens-per-second", "400", "--tokens", "20"])
    queue_db, streams_db = redis.Redis.from_url(redis_url), redis.Redis.from_url(streams_url)
    try:
        received = read(post_stream(stack.base_url, chat("split redis")))
        assert received.text == expected_text("split redis", 20)
        assert received.terminal["type"] == "done"
        events_key = f"{stack.prefix}:{{{received.stream_id}}}:events"
        assert streams_db.xlen(events_key) == len(received.events)
        assert not queue_db.exists(events_key)
        # The RQ job (named by the stream id) is on the queue's Redis only.
        assert queue_db.exists(f"rq:job:{received.stream_id}")
        assert not streams_db.exists(f"rq:job:{received.stream_id}")
    finally:
        keys = list(streams_db.scan_iter(match=f"{stack.prefix}:*", count=1000))
        if keys:
            streams_db.delete(*keys)
        queue_db.close()
        streams_db.close()
