"""The `spool` command: dev, gateway, worker, mock-upstream, chat, status, tail.

Each command imports what it needs only after parsing, because `worker` and
`mock-upstream` must patch the standard library with gevent before ssl,
redis or openai are imported.
"""

from __future__ import annotations

import argparse
import os
import sys


def main(argv: list[str] | None = None) -> int:
    """Entry point of the `spool` console script."""
    parser = argparse.ArgumentParser(prog="spool", description="A resumable streaming gateway for LLM answers.")
    commands = parser.add_subparsers(dest="command", required=True)

    dev = commands.add_parser("dev", help="run the whole stack locally (embedded Redis unless REDIS_URL is set)")
    dev.add_argument("--port", type=int, default=int(os.environ.get("SPOOL_PORT") or "8000"),
                     help="the gateway's port on 127.0.0.1 (default $SPOOL_PORT or 8000)")

    gateway = commands.add_parser("gateway", help="run the HTTP gateway (gunicorn, gevent workers)")
    gateway.add_argument("--bind", default="0.0.0.0:8000")
    gateway.add_argument("--workers", type=int, default=int(os.environ.get("SPOOL_GATEWAY_WORKERS", "2")))

    worker = commands.add_parser("worker", help="run generations from the queue")
    worker.add_argument("--concurrency", type=int, default=None, help="generations at once (default 64)")
    worker.add_argument("--burst", action="store_true", help="quit when the queue is empty")
    worker.add_argument("--name", default=None, help="worker name in RQ's registries")
    worker.add_argument("--metrics-port", type=int, default=None, help="serve /metrics on this port")

    mock = commands.add_parser("mock-upstream", help="run the OpenAI-compatible mock model")
    mock.add_argument("--host", default="127.0.0.1")
    mock.add_argument("--port", type=int, default=8090)
    mock.add_argument("--ttft-ms", type=float, default=100.0)
    mock.add_argument("--tokens-per-second", type=float, default=50.0)
    mock.add_argument("--tokens", type=int, default=200)

    from cli import client_commands  # standard library only: safe before gevent patches

    client_commands.add_commands(commands)

    args = parser.parse_args(argv)
    return {
        "dev": _dev,
        "gateway": _gateway,
        "worker": _worker,
        "mock-upstream": _mock_upstream,
        "chat": client_commands.chat,
        "status": client_commands.status,
        "tail": client_commands.tail,
    }[args.command](args)


def _logging() -> None:
    from spool.logs import configure

    try:
        configure(os.environ.get("SPOOL_LOG_LEVEL", "INFO"))
    except ValueError as exc:  # a bad SPOOL_LOG_LEVEL or SPOOL_LOG_FORMAT
        raise SystemExit(f"spool: {exc}") from None


def _gateway(args: argparse.Namespace) -> int:
    from importlib.util import find_spec
    from pathlib import Path

    # By path: importing the gateway package here, in gunicorn's master, would
    # import ssl before the gevent workers can patch it.
    config = Path(find_spec("gateway").origin).parent / "gunicorn_conf.py"
    _metrics_dir()
    command = [
        sys.executable, "-m", "gunicorn",
        "--config", str(config),
        "--bind", args.bind,
        "--workers", str(args.workers),
        "gateway:create_app()",
    ]
    os.execv(sys.executable, command)
    return 0  # not reached


def _metrics_dir() -> None:
    """Give gunicorn's workers a fresh shared directory for their metrics."""
    import tempfile

    if not os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = tempfile.mkdtemp(prefix="spool-metrics-")
    for name in os.listdir(os.environ["PROMETHEUS_MULTIPROC_DIR"]):
        if name.endswith(".db"):  # samples of a previous run
            os.remove(os.path.join(os.environ["PROMETHEUS_MULTIPROC_DIR"], name))


def _worker(args: argparse.Namespace) -> int:
    from gevent import monkey

    monkey.patch_all()
    _logging()
    # One process serving its own /metrics: keep its samples in memory, out of
    # a gateway's shared multiprocess directory.
    os.environ.pop("PROMETHEUS_MULTIPROC_DIR", None)
    from spool.settings import Settings
    from worker.main import run_worker

    settings = Settings.from_env()
    concurrency = args.concurrency or settings.worker_concurrency
    metrics_port = args.metrics_port if args.metrics_port is not None else settings.worker_metrics_port
    run_worker(settings, concurrency=concurrency, burst=args.burst, name=args.name, metrics_port=metrics_port)
    return 0


def _mock_upstream(args: argparse.Namespace) -> int:
    from gevent import monkey

    monkey.patch_all()
    from mock_upstream.server import MockConfig, serve

    serve(args.host, args.port, MockConfig(args.ttft_ms, args.tokens_per_second, args.tokens))
    return 0


def _dev(args: argparse.Namespace) -> int:
    _logging()
    from cli.dev import run_dev

    return run_dev(args.port)

