"""Vercel's resumable-stream as a benchmark target (`resumable`): whether it
can run here, and starting it.

The peer is bench/peers/resumable-stream/server.mjs on Node, with the npm
packages pinned by its package-lock.json (`make bench-peers` installs them),
and a private `redis-server` of its own, so that its Redis CPU is its cost
alone, as spool's Redis is spool's.
"""

from __future__ import annotations

import shutil
import subprocess
import uuid
from pathlib import Path

from bench.load import Target
from bench.procs import Fleet, Proc, free_port, http_ok

PEER_DIR = Path(__file__).resolve().parent / "peers" / "resumable-stream"
NODE_MAJOR = 20  # what the peer is pinned and measured on
# The roles whose CPU counts as the peer's serving cost.
ROLES = ("rs-node", "rs-redis")


def unavailable() -> str | None:
    """Why the peer cannot run on this machine, as one line; None when it can."""
    node = shutil.which("node")
    if node is None:
        return "resumable: skipped, `node` is not on PATH (install Node 20, then `make bench-peers`)"
    version = subprocess.run([node, "--version"], capture_output=True, text=True, timeout=30).stdout.strip()
    if not version.startswith(f"v{NODE_MAJOR}."):
        return f"resumable: skipped, Node {version or '(unknown version)'} found, the peer is pinned on Node {NODE_MAJOR}"
    if not (PEER_DIR / "node_modules" / "resumable-stream").is_dir():
        return "resumable: skipped, its npm packages are not installed (run `make bench-peers`)"
    return None


def start(fleet: Fleet, upstream_url: str) -> tuple[Target, list[Proc]]:
    """Start the peer's Redis and Node server in front of the mock at
    `upstream_url` (…/v1); returns the target and the processes to meter."""
    redis_proc, redis_url = fleet.redis("rs-redis")
    port = free_port()
    env = {"PORT": str(port), "REDIS_URL": redis_url, "OPENAI_BASE_URL": upstream_url,
           "OPENAI_API_KEY": "mock", "KEY_PREFIX": f"bench{uuid.uuid4().hex[:6]}"}
    node = fleet.start("rs-node", [shutil.which("node") or "node", str(PEER_DIR / "server.mjs")], env)
    fleet.wait(node, lambda: http_ok(f"http://127.0.0.1:{port}/healthz"), "resumable-stream peer")
    return Target("resumable", f"http://127.0.0.1:{port}"), [node, redis_proc]
