"""Who may call the /v1 routes, and which streams each caller may see.

With API keys configured every /v1 request needs `Authorization: Bearer <key>`
(or, on a stream's events and snapshot routes only, that stream's read token
as `?token=`). The gateway keeps only SHA-256 digests of the keys and compares
digests in constant time. A stream records the owner hash of the key that
created it (an HMAC of the key under SPOOL_SECRET_KEY); any other key gets 404
for it, as if it did not exist.

Without keys the gateway is open, which it refuses unless SPOOL_ALLOW_OPEN=1
says so (spool/security_config.py has every start-up rule). The check runs as
a `before_request` on the `/v1` prefix, so routes added later are covered
without touching them. It decides the request's `Caller` once
(`current_caller()`); a route reads it at its top and passes it on, to
`may_access` and to what creates streams, which read no request globals.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import secrets
import time
from dataclasses import dataclass, field

import redis
from flask import Flask, current_app, g, request
from itsdangerous import Signer

from gateway.errors import ApiError
from gateway.services import services
from spool.keys import Keys
from spool.security_config import api_keys, check
from spool.settings import Settings

log = logging.getLogger(__name__)

API_PREFIX = "/v1/"
# The only endpoints a stream read token opens (never cancel).
TOKEN_ENDPOINTS = frozenset({"api.get_stream", "api.stream_events"})
# A token's expiry is a Unix time: ten digits until 2286. Longer is not one
# (and int() of thousands of digits raises).
_MAX_EXPIRY_DIGITS = 12


def _digest(key: str) -> bytes:
    return hashlib.sha256(key.encode()).digest()


def owner_of(key: str, secret: str) -> str:
    """The owner hash recorded on a key's streams: an HMAC of the key under
    the server secret, so it reveals nothing about the key without the secret."""
    return hmac.new(secret.encode(), b"spool-owner\0" + key.encode(), hashlib.sha256).hexdigest()[:32]


def load_api_keys(settings: Settings) -> list[str]:
    """The configured keys: SPOOL_API_KEYS (comma-separated) and SPOOL_API_KEYS_FILE (one a line)."""
    return api_keys(settings)


@dataclass
class Access:
    """The key digests, the read-token signer, and the checks built on them."""

    # SHA-256 of a key -> its owner hashes, under the current secret first,
    # then under each previous one (streams created before a rotation).
    digests: dict[bytes, tuple[str, ...]]
    client: redis.Redis
    keys: Keys
    token_lifetime: int
    secrets: tuple[str, ...] = ()  # oldest first; the last signs
    _signer: Signer | None = field(default=None, repr=False)

    @classmethod
    def build(cls, settings: Settings, client: redis.Redis) -> Access:
        """Read and check the keys and secrets of `settings` (ConfigError when
        they would leave the gateway open or unsigned by accident)."""
        config = check(settings)
        newest_first = config.secrets[::-1]
        digests = {_digest(k): tuple(owner_of(k, s) for s in newest_first) for k in config.keys}
        if not digests:
            log.warning("OPEN MODE (SPOOL_ALLOW_OPEN=1): no API keys, the /v1 routes are open to anyone who "
                        "can reach this gateway. Set SPOOL_API_KEYS_FILE outside development.")
        if not config.secrets:
            log.warning("SPOOL_SECRET_KEY is unset: stream read tokens are signed with a secret "
                        "generated and kept in Redis (open mode only).")
        # A token outlives its stream's TTL by at most the longest generation.
        lifetime = int(settings.stream_ttl + settings.max_generation_seconds)
        return cls(digests, client, Keys(settings.key_prefix), lifetime, config.secrets)

    @property
    def is_open(self) -> bool:
        return not self.digests

    def owner_for(self, presented: str) -> str | None:
        """The owner hash of a presented key (under the current secret), or None."""
        owners = self.owners_for(presented)
        return owners[0] if owners else None

    def owners_for(self, presented: str) -> tuple[str, ...]:
        """The owner hashes of a presented key, current first; empty for an
        unknown key. Every stored digest is compared, in constant time, so
        timing reveals nothing about the keys."""
        digest = _digest(presented)
        found: tuple[str, ...] = ()
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
        # ASCII digits only: "²".isdigit() is true, and int() refuses it.
        if not (expires.isascii() and expires.isdigit()) or len(expires) > _MAX_EXPIRY_DIGITS:
            return False
        if int(expires) < (time.time() if now is None else now):
            return False
        return self._get_signer().validate(f"{stream_id}.{token}")

    def _get_signer(self) -> Signer:
        if self._signer is None:
            # A list: itsdangerous signs with the last and accepts any (rotation).
            secrets_ = list(self.secrets) or [self._shared_generated_secret()]
            self._signer = Signer(secrets_, salt="spool.stream-read-token", digest_method=hashlib.sha256)
        return self._signer

    def _shared_generated_secret(self) -> str:
        # Open mode only (keys require SPOOL_SECRET_KEY). SET NX: every gateway
        # process on this Redis agrees on one secret, so a token issued by one
        # is accepted by the others. Lost with Redis's data (docs/security.md).
        key = self.keys.generated_secret
        self.client.set(key, secrets.token_urlsafe(32), nx=True)
        return self.client.get(key).decode()


def access() -> Access:
    """The current app's Access."""
    return current_app.extensions["spool.access"]


@dataclass(frozen=True)
class Caller:
    """Who sent the current request, decided once by the auth check.

    owner: the key's owner hash under the current secret, recorded on the
    streams it creates ("" without a key). owners: that hash under every
    accepted secret, current first (streams from before a rotation). grant:
    the stream a read token opens, else None. subject: whom the limits count,
    the owner hash, `stream:<id>` for a token, else `ip:<address>`."""

    owner: str = ""
    owners: tuple[str, ...] = ()
    grant: str | None = None
    subject: str = ""


def current_caller() -> Caller:
    """The current request's Caller (set by the auth check before any route runs)."""
    return g.spool_caller


def register_auth(app: Flask, access_: Access) -> None:
    """Require a key (or a read token) on every /v1 request of `app`."""
    app.extensions["spool.access"] = access_

    @app.before_request
    def _authenticate():
        g.spool_caller = _identify(access_)


def _identify(access_: Access) -> Caller:
    """The request's Caller; ApiError 401 for a /v1 request without a valid key or token."""
    anonymous = Caller(subject=f"ip:{request.remote_addr}")
    # CORS preflights carry no credentials by design.
    if not request.path.startswith(API_PREFIX) or request.method == "OPTIONS" or access_.is_open:
        return anonymous
    scheme, _, presented = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() == "bearer" and presented:
        owners = access_.owners_for(presented.strip())
        if not owners:
            raise ApiError(401, "unauthorized", "invalid API key")
        return Caller(owner=owners[0], owners=owners, subject=owners[0])
    token = request.args.get("token")
    stream_id = (request.view_args or {}).get("stream_id")
    if token and request.endpoint in TOKEN_ENDPOINTS and stream_id:
        if not access_.token_grants(token, stream_id):
            raise ApiError(401, "unauthorized", "invalid or expired stream token")
        return Caller(grant=stream_id, subject=f"stream:{stream_id}")
    raise ApiError(401, "unauthorized", "send Authorization: Bearer <API key>")


def may_access(caller: Caller, stream_id: str) -> bool:
    """True when `caller` may use `stream_id` (a well-formed id): the gateway
    is open, the caller holds the stream's read token, or its key created the
    stream. False also when the stream does not exist."""
    access_ = access()
    if access_.is_open or caller.grant == stream_id:
        return True
    owner = services().store.owner(stream_id)
    if owner is None:
        return False
    # Any of the key's owner hashes: a stream created before the secret's
    # rotation recorded the hash under the previous secret.
    matches = [hmac.compare_digest(owner, mine.encode()) for mine in caller.owners]
    return any(matches)
