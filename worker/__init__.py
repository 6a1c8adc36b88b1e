"""The worker: runs generations from the RQ queue and publishes them to Redis.

main (`spool worker`'s entry: run_worker), runner (the dequeue loop), jobs
(what RQ runs), rq_books (RQ's records, public API only), reconcile (no job
stranded before its lease), leases, generation, publisher, chunks, upstream,
transport (the SDK's requests over urllib3), control (cancel), metrics.

It imports spool, never gateway, cli or mock_upstream
(tests/unit/test_package_boundaries.py checks). Its modules are imported by
name after gevent has patched the standard library (`spool worker`), so
this package imports none of them itself.
"""

__all__: list[str] = []
