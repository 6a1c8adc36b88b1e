"""The worker: runs generations from the RQ queue and publishes them to Redis.

runner (the dequeue loop), rq_books (RQ's records, public API only),
reconcile (no job stranded before its lease), leases, generation,
publisher, upstream, control (cancel), metrics.
"""

__all__: list[str] = []
