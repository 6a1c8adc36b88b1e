"""Who may call the /v1 routes, and which streams each caller may see.

With API keys configured every /v1 request needs `Authorization: Bearer <key>`
(or, on a stream's events and snapshot routes only, that stream's read token
as `?token=`). The gateway keeps only SHA-256 digests of the keys and compares
digests in constant time. A stream records the owner hash of the key that
created it; any other key gets 404 for it, as if it did not exist.

Without keys the gateway is open (the dev default) and says so at start-up.
The check runs as a `before_request` on the `/v1` prefix, so routes added
later are covered without touching them.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import secrets
import time
from dataclasses import dataclass, field
from pathlib import Path

import redis
from flask import Flask, current_app, g, request
from itsdangerous import Signer

from gateway.errors import ApiError
from spool.errors import ConfigError
from spool.keys import Keys
from spool.settings import Settings

log = logging.getLogger(__name__)

API_PREFIX = "/v1/"
# The only endpoints a stream read token opens (never cancel).
TOKEN_ENDPOINTS = frozenset({"api.get_stream", "api.stream_events"})


def _digest(key: str) -> bytes:
    return hashlib.sha256(key.encode()).digest()


def owner_of(key: str) -> str:
    """The owner hash recorded on a key's streams (never the key itself)."""
    return hashlib.sha256(b"spool-owner\0" + key.encode()).hexdigest()[:32]


def load_api_keys(settings: Settings) -> list[str]:
    """The configured keys: SPOOL_API_KEYS (comma-separated) and SPOOL_API_KEYS_FILE (one a line)."""
    keys = [k.strip() for k in settings.api_keys.split(",")]
    if settings.api_keys_file:
        try:
            keys += [line.strip() for line in Path(settings.api_keys_file).read_text().splitlines()]
        except OSError as exc:
            raise ConfigError(f"SPOOL_API_KEYS_FILE: cannot read {settings.api_keys_file}: {exc.strerror}") from None
    return [k for k in keys if k and not k.startswith("#")]


@dataclass
class Access:
    """The key digests, the read-token signer, and the checks built on them."""

    digests: dict[bytes, str]  # SHA-256 of a key -> its owner hash
    client: redis.Redis
    keys: Keys
    token_lifetime: int
    secret_key: str = ""
    _signer: Signer | None = field(default=None, repr=False)

    @classmethod
    def build(cls, settings: Settings, client: redis.Redis) -> Access:
        """Read the keys and secret from `settings`, warning when either is missing."""
        digests = {_digest(k): owner_of(k) for k in load_api_keys(settings)}
        if not digests:
            log.warning("NO API KEYS CONFIGURED: the /v1 routes are open to anyone who can reach "
                        "this gateway. Set SPOOL_API_KEYS or SPOOL_API_KEYS_FILE outside development.")
        if not settings.secret_key:
            log.warning("SPOOL_SECRET_KEY is unset: stream read tokens are signed with a secret "
                        "generated and kept in Redis. Set it outside development.")
        # A token outlives its stream's TTL by at most the longest generation.
        lifetime = int(settings.stream_ttl + settings.max_generation_seconds)
        return cls(digests, client, Keys(settings.key_prefix), lifetime, settings.secret_key)

    @property
    def is_open(self) -> bool:
        return not self.digests

    def owner_for(self, presented: str) -> str | None:
        """The owner hash of a presented key, or None. Every stored digest is
        compared, in constant time, so timing reveals nothing about the keys."""
        digest = _digest(presented)
        found = None
        for stored, owner in self.digests.items():
            if hmac.compare_digest(stored, digest):
                found = owner
        return found

    def read_token(self, stream_id: str, now: float | None = None) -> str:
        """A token that lets its holder read (not cancel) one stream until it expires."""
        expires = int((time.time() if now is None else now) + self.token_lifetime)
        signed = self._get_signer().sign(f"{stream_id}.{expires}").decode()
        return signed.removeprefix(f"{stream_id}.")

    def token_grants(self, token: str, stream_id: str, now: float | None = None) -> bool:
        """True when `token` was issued for `stream_id` and has not expired."""
        expires, _, _ = token.partition(".")
        if not expires.isdigit() or int(expires) < (time.time() if now is None else now):
            return False
        return self._get_signer().validate(f"{stream_id}.{token}")

    def _get_signer(self) -> Signer:
        if self._signer is None:
            secret = self.secret_key or self._shared_generated_secret()
            self._signer = Signer(secret, salt="spool.stream-read-token", digest_method=hashlib.sha256)
        return self._signer

    def _shared_generated_secret(self) -> str:
        # SET NX: every gateway process on this Redis agrees on one secret, so a
        # token issued by one is accepted by the others.
        key = self.keys.generated_secret
        self.client.set(key, secrets.token_urlsafe(32), nx=True)
        return self.client.get(key).decode()


def access() -> Access:
    """The current app's Access."""
    return current_app.extensions["spool.access"]


def register_auth(app: Flask, access_: Access) -> None:
    """Require a key (or a read token) on every /v1 request of `app`."""
    app.extensions["spool.access"] = access_

    @app.before_request
    def _authenticate():
        g.spool_owner = ""
        g.spool_grant = None
        g.spool_subject = f"ip:{request.remote_addr}"
        # CORS preflights carry no credentials by design.
        if not request.path.startswith(API_PREFIX) or request.method == "OPTIONS" or access_.is_open:
            return
        scheme, _, presented = request.headers.get("Authorization", "").partition(" ")
        if scheme.lower() == "bearer" and presented:
            owner = access_.owner_for(presented.strip())
            if owner is None:
                raise ApiError(401, "unauthorized", "invalid API key")
            g.spool_owner = g.spool_subject = owner
            return
        token = request.args.get("token")
        stream_id = (request.view_args or {}).get("stream_id")
        if token and request.endpoint in TOKEN_ENDPOINTS and stream_id:
            if not access_.token_grants(token, stream_id):
                raise ApiError(401, "unauthorized", "invalid or expired stream token")
            g.spool_grant = stream_id
            g.spool_subject = f"stream:{stream_id}"
            return
        raise ApiError(401, "unauthorized", "send Authorization: Bearer <API key>")


def may_access(stream_id: str) -> bool:
    """True when the current request may use `stream_id` (a well-formed id):
    the gateway is open, the request holds the stream's read token, or its
    key created the stream. False also when the stream does not exist."""
    access_ = access()
    if access_.is_open or g.get("spool_grant") == stream_id:
        return True
    owner = access_.client.hget(access_.keys.meta(stream_id), "owner")
    if owner is None:
        return False
    return hmac.compare_digest(owner, g.get("spool_owner", "").encode())
