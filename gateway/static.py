"""Serving the built frontend from the gateway (`spool dev`; nginx does it in compose)."""

from __future__ import annotations

from pathlib import Path

from flask import Flask, send_from_directory
from werkzeug.exceptions import NotFound


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
            return send_from_directory(root, path)
        except NotFound:
            return send_from_directory(root, "index.html")
