"""The application factory."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

import redis
from flask import Flask, Response

from gateway.auth import Access, register_auth
from gateway.cors import register_cors
from gateway.errors import register_error_handlers
from gateway.openai_routes import openai_api
from gateway.ops_routes import ops, register_request_ids
from gateway.limits import register_limits
from gateway.openapi import register_openapi
from gateway.routes import api
from gateway.services import Services
from gateway.static import register_static
from gateway.ui_routes import ui_api
from gateway.upstream_info import upstream_info
from spool.settings import Settings

log = logging.getLogger(__name__)


def create_app(config: Mapping[str, Any] | None = None, *, redis_client: redis.Redis | None = None) -> Flask:
    """Build the gateway.

    Settings come from their defaults, then the environment (`REDIS_URL`,
    `SPOOL_*`, ...), then `config` (tests). `redis_client` replaces the client
    built from `redis_url` (unit tests pass a fakeredis client).
    """
    app = Flask(__name__, static_folder=None)
    settings = Settings.from_env(**dict(config or {}))
    app.extensions["spool"] = Services.build(settings, redis_client)
    register_error_handlers(app)
    register_request_ids(app)
    # Auth first: the rate limit counts per authenticated client.
    register_auth(app, Access.build(settings, app.extensions["spool"].redis))
    register_limits(app)
    register_cors(app, settings.cors_origins)
    register_openapi(app, settings)
    app.register_blueprint(api)
    app.register_blueprint(openai_api)
    app.register_blueprint(ui_api)
    app.register_blueprint(ops)
    app.register_blueprint(upstream_info)
    if settings.static_dir:
        register_static(app, settings.static_dir)
    register_no_store(app)
    return app


def register_no_store(app: Flask) -> None:
    """`Cache-Control: no-store` on JSON responses that set no policy of their
    own: answers, snapshots and errors are per caller and may hold a read
    token, so no cache on the way may keep them. Event streams keep their
    `no-cache`; the page's files keep theirs."""

    @app.after_request
    def _no_store(response: Response) -> Response:
        if response.mimetype == "application/json" and "Cache-Control" not in response.headers:
            response.headers["Cache-Control"] = "no-store"
        return response
