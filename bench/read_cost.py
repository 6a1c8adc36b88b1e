"""The worker's CPU per upstream piece: N concurrent answers (150 tokens at
50 tokens/s) from the mock upstream through worker/upstream.py, in one
gevent process, after a round that fills the connection pool.

    .venv/bin/python -m bench.read_cost [urllib3|raw|bytes|timed] [N]

`urllib3` is the worker as it is (worker/transport.py under the SDK);
`raw` is httpx's own transport and a body read with `iter_raw`
(SPOOL_UPSTREAM_TRANSPORT=httpx); `bytes` reads that through the SDK's
`iter_bytes` (httpx's decoders), as before round two; `timed` is `urllib3`
with a socket timeout on every read of the body (a gevent timer per `recv`)
instead of the StallWatch. Not part of `make bench`.
"""

from gevent import monkey

monkey.patch_all()

import os  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402

import gevent  # noqa: E402

from bench.procs import Fleet  # noqa: E402
from spool.settings import Settings  # noqa: E402
from worker import transport, upstream  # noqa: E402


def main() -> None:
    variant = sys.argv[1] if len(sys.argv) > 1 else "urllib3"
    answers = int(sys.argv[2]) if len(sys.argv) > 2 else 200
    with Fleet() as fleet:
        _, mock_url = fleet.mock(ttft_ms=50, tokens_per_second=50, tokens=150)
        if variant == "bytes":
            upstream.UpstreamCall._body_chunks = lambda self, body: self._response.iter_bytes()
        if variant == "timed":
            init = transport.Body.__init__
            transport.Body.__init__ = lambda self, response, watch, timeout: init(self, response, watch, None)
        settings = Settings(openai_base_url=mock_url, openai_api_key="mock",
                            upstream_max_retries=0,
                            upstream_transport="urllib3" if variant in ("urllib3", "timed") else "httpx")
        client = upstream.Upstream(settings, connections=answers)
        pieces = [0]

        def one(i: int) -> None:
            for _ in client.open({"model": "mock", "messages": [{"role": "user", "content": f"q{i}"}]}):
                pieces[0] += 1

        gevent.joinall([gevent.spawn(one, i) for i in range(answers)])  # fills the pool
        pieces[0] = 0
        started = time.process_time()
        gevent.joinall([gevent.spawn(one, i) for i in range(answers)])
        spent = time.process_time() - started
        print(f"{variant}: {spent * 1e6 / pieces[0]:.1f} us CPU per piece ({pieces[0]} pieces, {answers} answers)")


if __name__ == "__main__":
    os.environ.setdefault("SPOOL_LOG_LEVEL", "WARNING")
    main()
