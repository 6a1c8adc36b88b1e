"""Runtime settings, read from the environment once at start-up."""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Mapping
from typing import Any

from spool.errors import ConfigError


@dataclasses.dataclass(frozen=True)
class Settings:
    """Every tunable of spool. Field names map to `SPOOL_<NAME>` env vars,
    except the three that follow existing conventions (see `_ENV_NAMES`)."""

    redis_url: str = "redis://127.0.0.1:6379/0"
    # Stream events and metadata may live on their own Redis (docs/scaling.md);
    # empty: on redis_url with the queue.
    streams_redis_url: str = ""
    openai_base_url: str = ""  # empty: the SDK's default (api.openai.com)
    openai_api_key: str = ""
    key_prefix: str = "spool"
    queue: str = "spool"
    default_model: str = "gpt-4o-mini"
    # Comma-separated model ids clients may ask for (the default model always);
    # empty: the default model only; "*": any model (an explicit opt-in).
    models: str = ""
    stream_ttl: int = 86_400  # seconds a stream is kept after its last write
    heartbeat_interval: float = 15.0  # seconds of silence before a heartbeat line
    coalesce_ms: float = 20.0  # delta writes to Redis at most this often
    upstream_timeout: float = 60.0  # connect / stall timeout on the upstream call
    upstream_max_retries: int = 2  # SDK retries before the first token
    # The worker's HTTP client under the SDK: "urllib3" (lean, the default)
    # or "httpx" (the SDK's own; used anyway when a proxy is set).
    upstream_transport: str = "urllib3"
    max_generation_seconds: float = 900.0
    worker_concurrency: int = 64
    lease_seconds: float = 10.0  # a running generation's lease; a lost worker is noticed after it
    max_attempts: int = 3  # runs of one answer (first + reruns after lost workers) before `error`
    upstream_reset_retries: int = 1  # reruns, with `reset`, after the upstream fails mid-answer
    redis_outage_window: float = 30.0  # seconds a worker buffers and retries while Redis is away
    worker_grace_seconds: float = 30.0  # on SIGTERM, then running answers move to other workers
    worker_metrics_port: int = 0  # when set, `spool worker` serves /metrics on it
    max_body_bytes: int = 1_000_000
    max_messages: int = 500
    max_tokens_cap: int = 32_768
    static_dir: str = ""  # when set, the gateway serves it at "/"
    # Access and limits (docs/security.md, checked by spool/security_config.py).
    # Lists are comma-separated; 0 is "no limit".
    api_keys: str | None = None  # None: unset; set, it must hold a key (even when empty)
    api_keys_file: str = ""  # one key per line
    allow_open: bool = False  # no keys at all is refused unless this says so (spool dev sets it)
    secret_key: str = ""  # signs read tokens and keys owner hashes; required with keys
    secret_key_previous: str = ""  # earlier secret keys, still accepted (rotation)
    cors_origins: str = ""  # literal origins only: scheme://host[:port]
    max_input_chars: int = 0
    # 1: a request parameter spool does not know is forwarded to the upstream
    # as sent (a new OpenAI parameter works the day it ships); 0: refused.
    forward_unknown_params: int = 1
    rate_limit_per_minute: int = 0
    max_concurrent_streams: int = 0
    max_queue_depth: int = 0

    @property
    def model_ids(self) -> list[str]:
        """The configured model ids (SPOOL_MODELS), or just the default model
        (also when SPOOL_MODELS is `*`: any model, none listed)."""
        ids = [m.strip() for m in self.models.split(",") if m.strip() and m.strip() != ANY_MODEL]
        return ids or [self.default_model]

    @property
    def any_model(self) -> bool:
        """True when SPOOL_MODELS is `*`: clients may name any model."""
        return self.models.strip() == ANY_MODEL

    @property
    def streams_url(self) -> str:
        """The Redis holding stream events and metadata."""
        return self.streams_redis_url or self.redis_url

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None, **overrides: Any) -> Settings:
        """Build settings from `environ` (default: os.environ), then `overrides`."""
        environ = os.environ if environ is None else environ
        values: dict[str, Any] = {}
        for field in dataclasses.fields(cls):
            name = _ENV_NAMES.get(field.name, "SPOOL_" + field.name.upper())
            raw = environ.get(name)
            # Empty is unset, except where setting a variable at all says
            # something (SPOOL_API_KEYS="" is a mistake, not open mode).
            if raw is not None and (raw != "" or field.name in _EMPTY_IS_SET):
                values[field.name] = _parse(name, raw, field.type)
        values.update(overrides)
        return cls(**values)


ANY_MODEL = "*"
_EMPTY_IS_SET = frozenset({"api_keys"})
_BOOLEANS = {"1": True, "true": True, "yes": True, "0": False, "false": False, "no": False}

_ENV_NAMES = {
    "redis_url": "REDIS_URL",
    "openai_base_url": "OPENAI_BASE_URL",
    "openai_api_key": "OPENAI_API_KEY",
}


def _parse(name: str, raw: str, type_name: Any) -> Any:
    if str(type_name) == "bool":
        if raw.strip().lower() not in _BOOLEANS:
            raise ConfigError(f"{name}={raw!r} is not 1 or 0")
        return _BOOLEANS[raw.strip().lower()]
    kind = {"int": int, "float": float}.get(str(type_name), str)
    try:
        value = kind(raw)
    except ValueError:
        raise ConfigError(f"{name}={raw!r} is not a valid {kind.__name__}") from None
    if kind is not str and value < 0:
        raise ConfigError(f"{name}={raw!r} must not be negative")
    return value
