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
import subprocess  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402

from bench.procs import http_ok  # noqa: E402
from cli.dev import free_port  # noqa: E402
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
    port = free_port()
    mock = subprocess.Popen([sys.executable, "-m", "cli", "mock-upstream", "--port", str(port), "--ttft-ms", "0",
                             "--tokens-per-second", "1000", "--tokens", "2"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 30
        while not http_ok(f"http://127.0.0.1:{port}/healthz"):
            if time.monotonic() > deadline:
                raise TimeoutError("the mock upstream did not start")
            time.sleep(0.05)
        settings = Settings(openai_base_url=f"http://127.0.0.1:{port}/v1", openai_api_key="mock",
                            upstream_max_retries=0, upstream_transport=transport)
        client = upstream.Upstream(settings, connections=4)
        for _ in range(50):  # warm: connections, imports
            list(client.open(REQUEST))
        started = time.process_time()
        for _ in range(ANSWERS):
            list(client.open(REQUEST))
        spent = time.process_time() - started
        print(f"{transport}: {spent * 1e6 / ANSWERS:.0f} us CPU per answer ({ANSWERS} answers)")
    finally:
        mock.terminate()
        mock.wait()


if __name__ == "__main__":
    os.environ.setdefault("SPOOL_LOG_LEVEL", "WARNING")
    main()
