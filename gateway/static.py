"""Serving the built frontend from the gateway (`spool dev`; nginx does it in compose)."""

from __future__ import annotations

from pathlib import Path

from flask import Flask, send_from_directory
from werkzeug.exceptions import NotFound

# The page's Content-Security-Policy; docs/security.md carries the same value
# for nginx. No inline scripts or styles: the Vite build emits none. `data:`
# images cover index.html's empty favicon.
CONTENT_SECURITY_POLICY = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; font-src 'self'; object-src 'none'; base-uri 'none'; "
    "form-action 'self'; frame-ancestors 'none'"
)
PAGE_HEADERS = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
}


def register_static(app: Flask, directory: str) -> None:
    """Serve `directory` at "/", with index.html for unknown non-API paths
    (the page keeps its state in the URL)."""
    root = Path(directory).resolve()

    @app.get("/", defaults={"path": "index.html"})
    @app.get("/<path:path>")
    def _static(path: str):
        if path.startswith("v1/"):
            raise NotFound()
        try:
            response = send_from_directory(root, path)
        except NotFound:
            response = send_from_directory(root, "index.html")
        response.headers.update(PAGE_HEADERS)
        return response
