"""The gateway's security settings, checked before it serves anything.

A gateway must not end up open, unsigned or over-permissive by accident, so
every doubtful setting is a configuration error rather than a quiet default:

- keys: `SPOOL_API_KEYS` set but holding no key, or a `SPOOL_API_KEYS_FILE`
  of blank lines and comments only, is an error (it is never open mode); a
  key shorter than MIN_KEY_LENGTH or holding spaces or non-ASCII is refused.
- open mode (no keys at all) needs `SPOOL_ALLOW_OPEN=1` (`spool dev` sets it).
- keys need `SPOOL_SECRET_KEY` (at least MIN_SECRET_LENGTH characters), with
  `SPOOL_SECRET_KEY_PREVIOUS` listing earlier ones still accepted.
- `SPOOL_CORS_ORIGINS` holds literal origins only (`scheme://host[:port]`).
- `SPOOL_MODELS=*` (any model) stands alone.

Standard library only: gunicorn's master runs `exit_on_error()` (from
gateway/gunicorn_conf.py) before it starts a worker, where importing the
gateway would import ssl before gevent patches it. A misconfigured gateway
so exits at once with one line naming the setting; `create_app` runs the
same checks (gateway/auth.py, gateway/cors.py) and raises ConfigError.
"""

from __future__ import annotations

import re
import sys
from dataclasses import dataclass
from pathlib import Path

from spool.errors import ConfigError
from spool.settings import ANY_MODEL, Settings

MIN_KEY_LENGTH = 32
MIN_SECRET_LENGTH = 32
_HOW_TO_MAKE_ONE = "python -c 'import secrets; print(secrets.token_urlsafe(32))'"
# A key travels in an Authorization header: printable ASCII, no spaces.
_KEY_CHARACTERS = re.compile(r"[\x21-\x7e]+")
_LABEL = r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
_ORIGIN = re.compile(rf"https?://(?:{_LABEL}(?:\.{_LABEL})*|\[[0-9A-Fa-f:.]+\])(?::([0-9]{{1,5}}))?")


@dataclass(frozen=True)
class SecurityConfig:
    """The checked settings: keys (empty: open mode), the read-token secrets
    (oldest first, the current SPOOL_SECRET_KEY last; empty: generated in
    Redis, open mode only) and the CORS origins."""

    keys: tuple[str, ...]
    secrets: tuple[str, ...]
    origins: tuple[str, ...]


def check(settings: Settings) -> SecurityConfig:
    """Every rule of this module; ConfigError names the first setting broken."""
    keys = api_keys(settings)
    secrets = secret_keys(settings)
    if keys and not secrets:
        raise ConfigError("API keys are configured but SPOOL_SECRET_KEY is not: set it to a random value of "
                          f"at least {MIN_SECRET_LENGTH} characters, the same on every gateway")
    if not keys and not settings.allow_open:
        raise ConfigError("no API keys: set SPOOL_API_KEYS_FILE (or SPOOL_API_KEYS), or SPOOL_ALLOW_OPEN=1 "
                          "to let anyone who can reach this gateway use it")
    origins = literal_origins(settings.cors_origins)
    models = [m.strip() for m in settings.models.split(",") if m.strip()]
    if ANY_MODEL in models and len(models) > 1:
        raise ConfigError(f"SPOOL_MODELS: {ANY_MODEL} allows any model and must stand alone")
    return SecurityConfig(tuple(keys), tuple(secrets), tuple(origins))


def api_keys(settings: Settings) -> list[str]:
    """The keys of SPOOL_API_KEYS (comma-separated) and SPOOL_API_KEYS_FILE
    (one a line, `#` comments), each checked; empty when neither is set."""
    keys: list[str] = []
    if settings.api_keys is not None:
        listed = [k.strip() for k in settings.api_keys.split(",") if k.strip()]
        if not listed:
            raise ConfigError("SPOOL_API_KEYS is set but holds no key: unset it, or list keys separated by commas")
        keys += _checked_keys("SPOOL_API_KEYS", listed)
    if settings.api_keys_file:
        path = settings.api_keys_file
        try:
            lines = Path(path).read_text(encoding="utf-8").splitlines()
        except OSError as exc:
            raise ConfigError(f"SPOOL_API_KEYS_FILE: cannot read {path}: {exc.strerror}") from None
        except UnicodeDecodeError:
            raise ConfigError(f"SPOOL_API_KEYS_FILE: {path} is not UTF-8 text") from None
        listed = [line.strip() for line in lines if line.strip() and not line.strip().startswith("#")]
        if not listed:
            raise ConfigError(f"SPOOL_API_KEYS_FILE: {path} holds no key (only blank lines or comments)")
        keys += _checked_keys(f"SPOOL_API_KEYS_FILE {path}", listed)
    return keys


def _checked_keys(source: str, keys: list[str]) -> list[str]:
    # Errors say which key by position and length, never the key itself.
    for number, key in enumerate(keys, 1):
        if not _KEY_CHARACTERS.fullmatch(key):
            raise ConfigError(f"{source}: key #{number} holds spaces or characters other than printable ASCII")
        if len(key) < MIN_KEY_LENGTH:
            raise ConfigError(f"{source}: key #{number} has {len(key)} characters; keys need at least "
                              f"{MIN_KEY_LENGTH} (make one with {_HOW_TO_MAKE_ONE})")
    return keys


def secret_keys(settings: Settings) -> list[str]:
    """SPOOL_SECRET_KEY_PREVIOUS's secrets, then SPOOL_SECRET_KEY last (the
    one that signs; itsdangerous accepts any of the list); empty when unset."""
    previous = [s.strip() for s in settings.secret_key_previous.split(",") if s.strip()]
    if not settings.secret_key:
        if previous:
            raise ConfigError("SPOOL_SECRET_KEY_PREVIOUS is set without SPOOL_SECRET_KEY")
        return []
    named = [("SPOOL_SECRET_KEY", settings.secret_key), *(("SPOOL_SECRET_KEY_PREVIOUS", s) for s in previous)]
    for name, secret in named:
        if len(secret) < MIN_SECRET_LENGTH:
            raise ConfigError(f"{name}: a secret has {len(secret)} characters; it needs at least "
                              f"{MIN_SECRET_LENGTH} (make one with {_HOW_TO_MAKE_ONE})")
    return [*previous, settings.secret_key]


def literal_origins(raw: str) -> list[str]:
    """The origins of a comma-separated SPOOL_CORS_ORIGINS, each exactly
    `http(s)://host[:port]` (a trailing slash is dropped). Wildcards, regular
    expression characters, paths and anything else are a ConfigError: flask-cors
    would read such an entry as a pattern, and `https://*.example.com` would
    also match `https://xexample.com.attacker.net`."""
    origins = []
    for entry in raw.split(","):
        origin = entry.strip().removesuffix("/")
        if not origin:
            continue
        match = _ORIGIN.fullmatch(origin)
        if not match or (match.group(1) and not 0 < int(match.group(1)) < 65536):
            raise ConfigError(f"SPOOL_CORS_ORIGINS: {origin!r} is not a literal origin scheme://host[:port] "
                              "(no wildcards, patterns or paths)")
        origins.append(origin)
    return origins


def exit_on_error() -> None:
    """Check the environment's settings as the gateway will; on a problem,
    exit with one line naming it (gunicorn's master calls this at start)."""
    try:
        check(Settings.from_env())
    except ConfigError as exc:
        sys.exit(f"spool gateway: configuration error: {exc}")
