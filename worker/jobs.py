"""The RQ job function, as `rq info` and the registries name it."""

from __future__ import annotations


def generate(stream_id: str) -> str:
    """Generate the answer of stream `stream_id`.

    Only `spool worker` runs these jobs: it calls worker.generation directly
    with the process's shared clients. A stock `rq worker` must not take them.
    """
    raise RuntimeError("spool jobs run only on `spool worker`, not on a stock rq worker")
