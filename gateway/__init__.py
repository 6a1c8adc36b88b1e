"""The HTTP gateway: a Flask app that enqueues answers and streams them back."""

from gateway.app import create_app

__all__ = ["create_app"]
