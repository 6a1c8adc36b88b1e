"""A real nginx for tests, configured from nginx/templates/spool.conf.template.

The template is rendered here the way the image's envsubst renders it (only
the ${SPOOL_NGINX_*} placeholders; nginx's own $variables stay), with test
values: loopback ports, temp paths. nginx runs in the foreground from a temp
prefix, never as the system service, and is stopped by the test.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import socket
import subprocess
from dataclasses import dataclass
from pathlib import Path

from tests.conftest import require
from tests.stack import ROOT, free_port, wait_until

TEMPLATE = ROOT / "nginx" / "templates" / "spool.conf.template"
NGINX_DOCKERFILE = ROOT / "nginx" / "Dockerfile"
PLACEHOLDER = re.compile(r"\$\{(SPOOL_NGINX_[A-Z0-9_]+)\}")
MIME_TYPES = Path("/etc/nginx/mime.types")

# The wrapper around the rendered template: what the nginx image's own
# /etc/nginx/nginx.conf provides, with every path inside the temp prefix.
MAIN_CONF = """\
{user}
worker_processes 1;
pid {dir}/nginx.pid;
error_log {dir}/error.log info;
events {{ worker_connections 256; }}
http {{
    {mime}
    default_type application/octet-stream;
    client_body_temp_path {dir}/client_body;
    proxy_temp_path {dir}/proxy;
    fastcgi_temp_path {dir}/fastcgi;
    uwsgi_temp_path {dir}/uwsgi;
    scgi_temp_path {dir}/scgi;
    sendfile on;
    keepalive_timeout 65;
    {extra_http}
    include {dir}/spool.conf;
}}
"""


def placeholders(text: str) -> set[str]:
    return set(PLACEHOLDER.findall(text))


def render(text: str, values: dict[str, str]) -> str:
    """Fill the ${SPOOL_NGINX_*} placeholders; every one must have a value."""
    missing = placeholders(text) - values.keys()
    if missing:
        raise KeyError(f"no value for {sorted(missing)}")
    return PLACEHOLDER.sub(lambda m: values[m.group(1)], text)


def dockerfile_env(path: Path = NGINX_DOCKERFILE) -> dict[str, str]:
    """The ENV defaults of a Dockerfile (KEY=value form, quotes removed)."""
    text = path.read_text().replace("\\\n", " ")
    env: dict[str, str] = {}
    for line in text.splitlines():
        if line.startswith("ENV "):
            for key, quoted, bare in re.findall(r'([A-Z0-9_]+)=(?:"([^"]*)"|(\S*))', line[4:]):
                env[key] = quoted or bare
    return env


def gateway_servers(gateways: list[str], servers: str | None = None) -> str:
    """Upstream server lines for `gateways` (base URLs or host:port), one
    each, with the parameters of `servers` (default: the image's), which names
    every replica at once through Docker's DNS (`server gateway:8000 ...;`).
    `resolve` is dropped: it needs nginx >= 1.27.3 (the image has 1.28, the
    Debian nginx of the tests is older), and addresses need no resolving."""
    servers = dockerfile_env()["SPOOL_NGINX_GATEWAYS"] if servers is None else servers
    match = re.fullmatch(r"\s*server\s+\S+((?:\s+[^;\s]+)*)\s*;\s*", servers)
    if not match:
        raise ValueError(f"expected one `server name:port params;` line: {servers!r}")
    params = "".join(f" {p}" for p in match.group(1).split() if p != "resolve")
    return " ".join(f"server {g.removeprefix('http://')}{params};" for g in gateways)


@dataclass
class Nginx:
    """A running nginx; `url` is its base URL."""

    popen: subprocess.Popen
    dir: Path
    url: str

    @property
    def access_log(self) -> Path:
        return self.dir / "access.log"

    def error_log_tail(self, lines: int = 30) -> str:
        path = self.dir / "error.log"
        text = path.read_text(errors="replace").splitlines() if path.exists() else []
        return "\n".join(text[-lines:])

    def stop(self) -> None:
        if self.popen.poll() is None:
            self.popen.send_signal(signal.SIGTERM)  # fast shutdown: open streams are cut
            try:
                self.popen.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.popen.kill()
                self.popen.wait()


def values_for(directory: Path, port: int, gateways: list[str], **overrides: str) -> dict[str, str]:
    """Placeholder values for a test nginx on 127.0.0.1:`port`: the image's
    defaults with loopback addresses and paths inside `directory`."""
    root = directory / "html"
    root.mkdir(exist_ok=True)
    (root / "index.html").write_text("<!doctype html><title>spool test page</title>\n")
    values = dockerfile_env()
    values.update(
        SPOOL_NGINX_LISTEN=f"127.0.0.1:{port}",
        SPOOL_NGINX_GATEWAYS=gateway_servers(gateways),
        SPOOL_NGINX_RESOLVER="127.0.0.1",  # never asked: test servers are IP addresses
        SPOOL_NGINX_ROOT=str(root),
        SPOOL_NGINX_ACCESS_LOG=str(directory / "access.log"),
    )
    values.update(overrides)
    return values


def start_nginx(directory: Path, gateways: list[str], *, extra_http: str = "", **overrides: str) -> Nginx:
    """Render the template for `gateways` and run nginx until `stop()`.
    `overrides` replace placeholder values (SPOOL_NGINX_READ_TIMEOUT="2s")."""
    binary = shutil.which("nginx") or "/usr/sbin/nginx"
    require(Path(binary).exists(), "nginx is not installed (apt-get install -y nginx)")
    port = free_port()
    directory.mkdir(parents=True, exist_ok=True)
    values = values_for(directory, port, gateways, **overrides)
    (directory / "spool.conf").write_text(render(TEMPLATE.read_text(), values))
    conf = directory / "nginx.conf"
    conf.write_text(MAIN_CONF.format(
        # Workers would otherwise run as nobody, who cannot enter pytest's temp dirs.
        user="user root;" if os.geteuid() == 0 else "",
        dir=directory,
        mime=f"include {MIME_TYPES};" if MIME_TYPES.exists() else "",
        extra_http=extra_http,
    ))
    command = [binary, "-p", str(directory), "-e", str(directory / "error.log"), "-c", str(conf)]
    check = subprocess.run([*command, "-t"], capture_output=True, text=True, timeout=30)
    if check.returncode != 0:
        raise RuntimeError(f"nginx -t failed:\n{check.stderr}\n{conf.read_text()}")
    log = open(directory / "nginx.out", "ab")
    popen = subprocess.Popen([*command, "-g", "daemon off;"], stdout=log, stderr=subprocess.STDOUT)
    log.close()
    nginx = Nginx(popen, directory, f"http://127.0.0.1:{port}")

    def listening() -> bool:
        if popen.poll() is not None:
            raise RuntimeError(f"nginx exited with {popen.returncode}\n{nginx.error_log_tail()}")
        with socket.socket() as sock:
            return sock.connect_ex(("127.0.0.1", port)) == 0

    try:
        wait_until(listening, 10, f"nginx on port {port}")
    except BaseException:
        nginx.stop()
        raise
    return nginx


def kill_tree(pid: int) -> None:
    """SIGKILL a process and its descendants (a gunicorn master and its
    workers), as a crashed machine would lose them."""
    family = [pid]
    children: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        children.setdefault(int(fields[1]), []).append(int(stat.parent.name))
    for parent in family:
        family.extend(children.get(parent, []))
    for member in family:
        try:
            os.kill(member, signal.SIGKILL)
        except ProcessLookupError:
            pass
