"""The HTTP gateway: a Flask app that enqueues answers and streams them back.

app (the factory), routes per API (routes: native; openai_routes; ui_routes:
the AI SDK; ops_routes: health, readiness, metrics), request reading
(validation, messages, openai_request, ui_messages), auth (keys, read tokens,
the per-request Caller), limits, intake (queueing a stream), streaming (the
follow loop's response), errors, cors, static, openapi, metrics,
upstream_info, services (the per-process clients), and the gunicorn config
and worker class.

It imports spool, never worker, cli or mock_upstream
(tests/unit/test_package_boundaries.py checks). Others take only the factory.
"""

from gateway.app import create_app

__all__ = ["create_app"]
