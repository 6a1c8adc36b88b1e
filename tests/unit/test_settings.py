from __future__ import annotations

import pytest

from spool.errors import ConfigError
from spool.settings import Settings


def test_defaults_then_environment_then_overrides():
    env = {"REDIS_URL": "redis://r:1/2", "SPOOL_STREAM_TTL": "60", "SPOOL_COALESCE_MS": "5.5", "SPOOL_QUEUE": "q"}
    settings = Settings.from_env(env, queue="override")
    assert settings.redis_url == "redis://r:1/2"
    assert settings.stream_ttl == 60 and settings.coalesce_ms == 5.5
    assert settings.queue == "override"
    assert settings.heartbeat_interval == 15.0


@pytest.mark.parametrize("env", [{"SPOOL_STREAM_TTL": "soon"}, {"SPOOL_HEARTBEAT_INTERVAL": "-1"}])
def test_malformed_values_name_the_variable(env):
    with pytest.raises(ConfigError, match=next(iter(env))):
        Settings.from_env(env)


def test_streams_redis_defaults_to_the_queue_redis_and_can_move():
    assert Settings.from_env({"REDIS_URL": "redis://q:1/0"}).streams_url == "redis://q:1/0"
    moved = Settings.from_env({"REDIS_URL": "redis://q:1/0", "SPOOL_STREAMS_REDIS_URL": "redis://s:2/0"})
    assert moved.streams_url == "redis://s:2/0" and moved.redis_url == "redis://q:1/0"
