"""Cross-origin access to the API for an allowlist of origins (flask-cors).

None by default: a browser page from another origin cannot call the gateway
unless its origin is listed in SPOOL_CORS_ORIGINS. Preflights (OPTIONS) pass
without credentials (gateway/auth.py lets them through) and answer with the
headers a client needs, including access to X-Stream-Id and X-Stream-Token.
Entries are literal origins only (spool/security_config.py): flask-cors reads
an entry with `*` or other regular-expression characters as a pattern.
"""

from __future__ import annotations

from flask import Flask
from flask_cors import CORS

from spool.security_config import literal_origins

ALLOWED_HEADERS = ["Authorization", "Content-Type", "Accept", "Last-Event-ID"]
EXPOSED_HEADERS = ["X-Stream-Id", "X-Stream-Token", "Retry-After"]
PREFLIGHT_MAX_AGE = 600


def parse_origins(raw: str) -> list[str]:
    """The origins of a comma-separated SPOOL_CORS_ORIGINS, without trailing
    slashes; ConfigError for an entry that is not a literal origin."""
    return literal_origins(raw)


def register_cors(app: Flask, raw_origins: str) -> None:
    """Answer CORS requests on /v1 from the listed origins; nothing when none are."""
    origins = parse_origins(raw_origins)
    if not origins:
        return
    CORS(
        app,
        resources={r"/v1/*": {"origins": origins}},
        allow_headers=ALLOWED_HEADERS,
        expose_headers=EXPOSED_HEADERS,
        methods=["GET", "POST", "OPTIONS"],
        max_age=PREFLIGHT_MAX_AGE,
        # Keys travel in the Authorization header, never in cookies.
        supports_credentials=False,
    )
