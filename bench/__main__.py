"""`python -m bench [standard|scale] [options]`: run a scenario, print its table."""

from __future__ import annotations

import argparse
import os
import signal
import sys

from bench.cluster import master_cpu
from bench.report import details, summary, table
from bench.scenarios import Options, knees, scale, standard


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("scenario", nargs="?", choices=("standard", "scale"), default="standard")
    parser.add_argument("--clients", type=int, default=200, help="concurrent clients in the load phases")
    parser.add_argument("--ttft-rounds", type=int, default=20)
    parser.add_argument("--levels", default="250,500,1000,2000", help="scale: concurrency levels")
    parser.add_argument("--tokens", type=int, default=60, help="scale: tokens per answer")
    parser.add_argument("--workers", type=int, default=1, help="spool worker processes")
    parser.add_argument("--worker-concurrency", type=int, default=1000)
    parser.add_argument("--gateway-workers", type=int, default=1, help="gunicorn workers of the gateway")
    parser.add_argument("--coalesce-ms", type=float, default=None, help="SPOOL_COALESCE_MS for the workers")
    parser.add_argument("--ramp", type=float, default=2.0, help="seconds over which clients start")
    parser.add_argument("--burst", type=float, default=0.4, help="standard: seconds over which the burst's clients start")
    parser.add_argument("--targets", default="mock,resumable,direct,spool",
                        help="resumable is skipped, with a message, without Node 20 and `make bench-peers`")
    parser.add_argument("--streams-cluster", action="store_true",
                        help="the streams on a 3-master Redis Cluster the benchmark starts (the queue on plain Redis)")
    args = parser.parse_args(argv)
    # SIGTERM as an exception, so the Fleet stops every process it started.
    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(128 + signum))
    opts = Options(
        clients=args.clients, ttft_rounds=args.ttft_rounds,
        levels=tuple(int(x) for x in args.levels.split(",")), workers=args.workers,
        worker_concurrency=args.worker_concurrency, gateway_workers=args.gateway_workers,
        coalesce_ms=args.coalesce_ms, ramp=args.ramp, burst=args.burst, targets=tuple(args.targets.split(",")),
        streams_cluster=args.streams_cluster,
    )
    log = lambda message: print(message, file=sys.stderr, flush=True)  # noqa: E731
    log(f"load before: {os.getloadavg()[0]:.2f} (1-minute average) on {os.cpu_count()} CPUs")
    rows = standard(opts, log) if args.scenario == "standard" else scale(opts, args.tokens, log)
    print(table(rows))
    print(details(rows))
    if args.streams_cluster:
        print(master_cpu(rows))
    if args.scenario == "standard":
        print(summary(rows))
    if args.scenario == "scale":
        print(knees(rows))
    print(f"load after: {os.getloadavg()[0]:.2f} (1-minute average)")
    failed = [r for r in rows if r.exact != r.streams]
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
