"""The `spool` command and what it runs beside the services.

main (the parser and the service commands: dev, gateway, worker,
mock-upstream; also `python -m cli`), client_commands (chat, status, tail),
client (SpoolClient, a standard-library client of the native API), dev
(`spool dev`: the whole stack in one command) and embedded_redis (dev's
valkey-server).

A tool on top of the services: it may import spool and start gateway,
worker and mock_upstream processes, but nothing in spool, gateway or worker
may import it. Importing this package stays cheap and imports no ssl:
`spool worker` and `spool mock-upstream` patch the standard library with
gevent after parsing, so each command imports its modules only then.
"""

from cli.main import main

__all__ = ["main"]
