"""The worker: runs generations from the RQ queue and publishes them to Redis."""

__all__: list[str] = []
