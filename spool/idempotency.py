"""Idempotency-Key: a retried POST gets the stream the first one created."""

from __future__ import annotations

import hashlib
import json
from typing import Any

import redis

from spool.keys import Keys

MAX_KEY_LENGTH = 255


def is_valid_key(value: str) -> bool:
    """Printable ASCII, 1 to 255 characters (the header's usual form)."""
    return 0 < len(value) <= MAX_KEY_LENGTH and value.isascii() and value.isprintable()


def fingerprint(request: dict[str, Any]) -> str:
    """A digest of the validated request, to refuse a key reused for another body."""
    return hashlib.sha256(json.dumps(request, sort_keys=True, ensure_ascii=False).encode()).hexdigest()


def claim(client: redis.Redis, keys: Keys, key: str, stream_id: str, print_: str, ttl: int) -> tuple[str, str] | None:
    """Bind `key` to `stream_id` unless it is bound already.

    Returns None when this call bound it, else the (stream id, fingerprint)
    bound earlier."""
    name = keys.idempotency(hashlib.sha256(key.encode()).hexdigest())
    if client.set(name, f"{stream_id}:{print_}", nx=True, ex=ttl):
        return None
    bound = client.get(name)
    if bound is None:  # expired between SET and GET: bind again
        return claim(client, keys, key, stream_id, print_, ttl)
    existing, _, existing_print = bound.decode().partition(":")
    return existing, existing_print


def release(client: redis.Redis, keys: Keys, key: str) -> None:
    """Unbind `key` (the stream it named could not be created)."""
    client.delete(keys.idempotency(hashlib.sha256(key.encode()).hexdigest()))
