"""Run a real stack with a backlog and save what operators see, for docs/operations.md.

Usage: .venv/bin/python scripts/capture-ops-output.py [OUT_DIR]   (Redis at 127.0.0.1:6379)

One gateway, one worker with 4 slots and /metrics, the mock upstream at 40
tokens/s (80 tokens): 12 answers, one mock-error and one mock-429 at once,
then one answer dropped after 3 events and resumed.
"""

import concurrent.futures
import subprocess
import sys
import time
from pathlib import Path

import requests

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.client import chat, post_stream, read  # noqa: E402
from tests.stack import free_port, start_stack  # noqa: E402


def main(out: Path) -> None:
    out.mkdir(exist_ok=True)
    worker_port = free_port()
    stack = start_stack("redis://127.0.0.1:6379/0", worker_concurrency=4, log_dir=out,
                        env={"SPOOL_WORKER_METRICS_PORT": str(worker_port)},
                        mock_args=["--ttft-ms", "150", "--tokens-per-second", "40", "--tokens", "80"])
    base = stack.base_url

    def rq_info() -> str:
        command = [str(ROOT / ".venv/bin/rq"), "info", "--url", stack.redis_url, stack.prefix]
        return subprocess.run(command, capture_output=True, text=True, check=True).stdout

    try:
        (out / "readyz.txt").write_text(subprocess.run(["curl", "-s", "-i", base + "/readyz"],
                                                       capture_output=True, text=True).stdout)
        with concurrent.futures.ThreadPoolExecutor(16) as pool:
            bodies = [chat(f"q{i}") for i in range(12)]
            bodies += [chat("bad", model="mock-error"), chat("limited", model="mock-429")]
            futures = [pool.submit(lambda b=b: read(post_stream(base, b))) for b in bodies]
            time.sleep(1.0)  # let the worker's 4 slots fill: the rest waits in the queue
            (out / "rq_info_busy.txt").write_text(rq_info())
            (out / "metrics_busy.txt").write_text(requests.get(base + "/metrics", timeout=10).text)
            for future in futures:
                future.result()
        dropped = read(post_stream(base, chat("resume me")), stop_after=3)
        read(requests.get(f"{base}/v1/streams/{dropped.stream_id}/events", params={"after": 3},
                          stream=True, timeout=30))
        time.sleep(1.0)  # jobs wind up in RQ's registries just after their last event
        (out / "rq_info_idle.txt").write_text(rq_info())
        (out / "metrics_gateway.txt").write_text(requests.get(base + "/metrics", timeout=10).text)
        (out / "metrics_worker.txt").write_text(requests.get(f"http://127.0.0.1:{worker_port}/metrics",
                                                             timeout=10).text)
    finally:
        stack.stop()


if __name__ == "__main__":
    main(Path(sys.argv[1] if len(sys.argv) > 1 else "ops-capture"))
