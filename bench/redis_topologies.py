"""Real Redis Clusters and Sentinel setups on loopback ports, for the tests
(tests/conftest.py, tests/chaos) and the benchmark (`python -m bench
--streams-cluster`).

`RedisCluster3` starts six `redis-server --cluster-enabled yes` (three masters,
one replica each) and joins them with `redis-cli --cluster create`;
`SentinelSetup` starts a master, a replica and three sentinels. Both stop
every process they started, and each node's data lives in a temporary
directory (or one given). Start-up takes about a second; share one per module
or session. Needs only redis-py and the redis-server/redis-cli binaries, not
spool.
"""

from __future__ import annotations

import random
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path

import redis

# A cluster node listens on port and port + 10000 (its bus), so ports above this are refused.
MAX_NODE_PORT = 55535
# Short enough that a chaos test's failover takes a couple of seconds.
NODE_TIMEOUT_MS = 2000


def _bindable(port: int) -> bool:
    with socket.socket() as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def cluster_ports(count: int) -> list[int]:
    """`count` free ports whose bus ports (port + 10000) are free too."""
    ports: list[int] = []
    while len(ports) < count:
        port = random.randint(20000, MAX_NODE_PORT)
        if port not in ports and _bindable(port) and _bindable(port + 10000):
            ports.append(port)
    return ports


def wait_until(predicate, timeout: float, what: str, interval: float = 0.05) -> None:
    """Poll `predicate` until it is true; fail with `what` after `timeout` seconds.
    For readiness of other processes only, where no event can be awaited."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(interval)
    raise TimeoutError(f"timed out after {timeout}s waiting for {what}")


def _binary(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        raise RuntimeError(f"{name} is not installed (scripts/system-deps installs it)")
    return path


class _Servers:
    """Processes started by a harness, stopped together."""

    def __init__(self, directory: Path | None = None) -> None:
        self.temporary = directory is None  # removed by stop(); a given one is kept
        self.directory = directory or Path(tempfile.mkdtemp(prefix="spool-redis-"))
        self.directory.mkdir(parents=True, exist_ok=True)
        self.processes: dict[int, subprocess.Popen] = {}

    def spawn(self, port: int, *args: str) -> None:
        node_dir = self.directory / str(port)
        node_dir.mkdir(exist_ok=True)
        self.processes[port] = subprocess.Popen(
            [_binary("redis-server"), *args, "--port", str(port), "--bind", "127.0.0.1", "--dir", str(node_dir),
             "--save", "", "--appendonly", "no", "--logfile", str(node_dir / "redis.log")],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )

    def kill(self, port: int) -> None:
        """SIGKILL one server: it takes what it did not replicate with it."""
        process = self.processes[port]
        process.send_signal(signal.SIGKILL)
        process.wait(timeout=10)

    def stop(self) -> None:
        for process in self.processes.values():
            if process.poll() is None:
                process.kill()
                process.wait(timeout=10)
        if self.temporary:
            shutil.rmtree(self.directory, ignore_errors=True)


def _answers(port: int, check) -> bool:
    client = redis.Redis(port=port, socket_connect_timeout=0.5, socket_timeout=2)
    try:
        return bool(check(client))
    except redis.RedisError:
        return False
    finally:
        client.close()


def _settled(client: redis.Redis) -> bool:
    """A master serving slots, or a replica in sync with its master."""
    info = client.info("replication")
    if info["role"] == "slave":
        return info.get("master_link_status") == "up"
    return any(node["slots"] for addr, node in client.cluster("nodes").items() if "myself" in node["flags"])


class RedisCluster3:
    """A 3-master, 3-replica Redis Cluster on loopback. `url` is spool's
    `redis+cluster://` URL with every master as a seed."""

    def __init__(self, directory: Path | None = None, *args: str) -> None:
        """`directory` holds the nodes' data and logs (by default a temporary
        one, removed by `stop`); `args` are more redis-server options."""
        self.servers = _Servers(directory)
        self.ports = cluster_ports(6)
        self.args = args

    def start(self) -> RedisCluster3:
        try:
            for port in self.ports:
                self.servers.spawn(port, "--cluster-enabled", "yes", "--cluster-config-file", "nodes.conf",
                                   "--cluster-node-timeout", str(NODE_TIMEOUT_MS), *self.args)
            for port in self.ports:
                wait_until(lambda p=port: _answers(p, lambda c: c.ping()), 10, f"cluster node {port}")
            subprocess.run(
                [_binary("redis-cli"), "--cluster", "create", *(f"127.0.0.1:{p}" for p in self.ports),
                 "--cluster-replicas", "1", "--cluster-yes"],
                check=True, capture_output=True, timeout=60,
            )
            self.wait_ok()
            # Until each replica follows its master, a failover has nobody to promote.
            for port in self.ports:
                wait_until(lambda p=port: _answers(p, _settled), 30, f"node {port} to take its role")
        except BaseException:
            self.stop()
            raise
        return self

    def wait_ok(self, timeout: float = 30) -> None:
        """Until every live node reports cluster_state:ok and sees all 16384 slots."""
        def ok(client: redis.Redis) -> bool:
            info = client.cluster("info")
            return info["cluster_state"] == "ok" and int(info["cluster_slots_ok"]) == 16384
        live = [p for p in self.ports if self.servers.processes[p].poll() is None]
        for port in live:
            wait_until(lambda p=port: _answers(p, ok), timeout, f"cluster_state:ok on {port}")

    @property
    def url(self) -> str:
        return "redis+cluster://" + ",".join(f"127.0.0.1:{p}" for p in self.ports)

    def masters(self) -> list[int]:
        """The ports of the live masters, as the cluster sees them now."""
        live = [p for p in self.ports if self.servers.processes[p].poll() is None]
        client = redis.Redis(port=live[0])
        try:
            nodes = client.cluster("nodes")
        finally:
            client.close()
        return sorted(int(addr.split("@")[0].rsplit(":", 1)[1]) for addr, node in nodes.items()
                      if "master" in node["flags"] and "fail" not in node["flags"] and node["slots"])

    def kill(self, port: int) -> None:
        self.servers.kill(port)

    def stop(self) -> None:
        self.servers.stop()


class SentinelSetup:
    """One master, one replica and three sentinels watching service `spool`.
    `url` is spool's `redis+sentinel://` URL for it."""

    SERVICE = "spool"

    def __init__(self) -> None:
        self.servers = _Servers()
        self.master, self.replica, *self.sentinels = cluster_ports(5)

    def start(self) -> SentinelSetup:
        try:
            self.servers.spawn(self.master)
            self.servers.spawn(self.replica, "--replicaof", "127.0.0.1", str(self.master))
            for port in self.sentinels:
                config = self.servers.directory / f"sentinel-{port}.conf"
                config.write_text(
                    f"port {port}\nbind 127.0.0.1\n"
                    f"sentinel monitor {self.SERVICE} 127.0.0.1 {self.master} 2\n"
                    f"sentinel down-after-milliseconds {self.SERVICE} {NODE_TIMEOUT_MS}\n"
                    f"sentinel failover-timeout {self.SERVICE} 10000\n"
                )
                self.servers.processes[port] = subprocess.Popen(
                    [_binary("redis-server"), str(config), "--sentinel"],
                    stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                )
            wait_until(lambda: _answers(self.replica, lambda c: c.info("replication")["master_link_status"] == "up"),
                       20, "the replica to sync")
            for port in self.sentinels:
                wait_until(lambda p=port: _answers(p, lambda c: c.execute_command(
                    "SENTINEL", "REPLICAS", self.SERVICE)), 20, f"sentinel {port} to see the replica")
        except BaseException:
            self.stop()
            raise
        return self

    @property
    def url(self) -> str:
        return "redis+sentinel://" + ",".join(f"127.0.0.1:{p}" for p in self.sentinels) + f"/{self.SERVICE}/0"

    def kill(self, port: int) -> None:
        self.servers.kill(port)

    def stop(self) -> None:
        self.servers.stop()
