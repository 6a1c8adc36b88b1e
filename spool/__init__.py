"""spool: a queue-backed, resumable streaming gateway for LLM answers.

This package is the core both services share, and nothing else: settings
(settings, security_config), Redis keys (keys), events and the message fold
(events, message, errors), wire formats (wire, openai_wire, ui_wire) and
decoders, the stream store and its failover journal (spool/streams/), the
tail hub, what appends announce to it, the follow loop and what wakes a
quiet follower (hub*, announcements, tail, idle_clock), idempotency
records, the queue's job spec (queueing), Redis clients, their health and
their socket checks under gevent (redis_client, redis_health, redis_polls),
and structured logs (logs).

It must not import gateway, worker, cli or mock_upstream (the services and
the tools on top of it; tests/unit/test_package_boundaries.py checks). And
importing it stays cheap and side-effect free: the worker patches the
standard library with gevent before anything opens a socket, so nothing here
may import ssl, redis or openai at package level. Modules are imported by
name (`from spool.keys import Keys`); `__all__` here lists only the version.
"""

__version__ = "0.1.0"

__all__ = ["__version__"]
