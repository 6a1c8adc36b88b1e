"""spool: a queue-backed, resumable streaming gateway for LLM answers.

The core shared by the gateway and the worker. Importing this package stays
cheap and side-effect free: the worker patches the standard library with
gevent before anything opens a socket, so nothing here may import ssl,
redis or openai at package level.
"""

__version__ = "0.1.0"

__all__ = ["__version__"]
