"""The worker's CPU to open one answer through the SDK and read it: 500
two-token answers in a row from the mock upstream (no wait for the first
token) through worker/upstream.py, in one gevent process.

    .venv/bin/python -m bench.open_cost [urllib3|httpx]

The SDK's `create` (building the request), the transport's send and the
response's head, and reading two chunks: the per-answer part of a worker's
start that is not spool's own Redis work. Not part of `make bench`.
"""

from gevent import monkey

monkey.patch_all()

import os  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402

from bench.procs import Fleet  # noqa: E402
from spool.settings import Settings  # noqa: E402
from worker import upstream  # noqa: E402

ANSWERS = 500
REQUEST = {
    "model": "mock",
    "messages": [{"role": "system", "content": "be brief"}, {"role": "user", "content": "hello there, how are you"}],
    "params": {"temperature": 0.5, "max_tokens": 100},
}


def main() -> None:
    transport = sys.argv[1] if len(sys.argv) > 1 else "urllib3"
    with Fleet() as fleet:
        _, mock_url = fleet.mock(ttft_ms=0, tokens_per_second=1000, tokens=2)
        settings = Settings(openai_base_url=mock_url, openai_api_key="mock",
                            upstream_max_retries=0, upstream_transport=transport)
        client = upstream.Upstream(settings, connections=4)
        for _ in range(50):  # warm: connections, imports
            list(client.open(REQUEST))
        started = time.process_time()
        for _ in range(ANSWERS):
            list(client.open(REQUEST))
        spent = time.process_time() - started
        print(f"{transport}: {spent * 1e6 / ANSWERS:.0f} us CPU per answer ({ANSWERS} answers)")


if __name__ == "__main__":
    os.environ.setdefault("SPOOL_LOG_LEVEL", "WARNING")
    main()
