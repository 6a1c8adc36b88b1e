"""docker-compose.yml: valid by the compose specification, shaped as
docs/deployment.md says, and runnable. No Docker here, so the last test starts
every service's own command from the file on loopback (service hostnames
become 127.0.0.1, container ports become free ports) with only the
environment the file gives it, then runs a stream through the nginx service.
When the file and the code drift apart, that test fails. It runs keyed, as
production does, and then searches every process's log for the secrets.

tests/e2e/compose-spec.json is schema/compose-spec.json of
github.com/compose-spec/compose-spec at commit
00655e2222608fa6eaecdf12ac5195889ca2244a, vendored unchanged.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import tomllib
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import redis
import requests
import yaml
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from mock_upstream import expected_text
from spool.errors import ConfigError
from spool.security_config import check
from spool.settings import Settings
from tests.client import chat, get_events, post_stream, read
from tests.conftest import require
from tests.e2e.nginx_harness import TEMPLATE, dockerfile_env, gateway_servers, placeholders, start_nginx
from tests.stack import ROOT, free_port, wait_until

COMPOSE_FILE = ROOT / "docker-compose.yml"
SCHEMA = Path(__file__).with_name("compose-spec.json")
PYTHON_SERVICES = ("gateway", "worker", "mock-upstream")

_VARIABLE = re.compile(r"\$\$|\$\{([A-Za-z_][A-Za-z0-9_]*)(?:(:?[-?+])([^}]*))?\}|\$([A-Za-z_][A-Za-z0-9_]*)")
# What the file requires to be set at all (`${VAR:?...}`).
REQUIRED = {"SPOOL_REDIS_PASSWORD": "compose-test-redis-password"}


def interpolate(value: Any, env: dict[str, str]) -> Any:
    """Compose's interpolation: $VAR, ${VAR}, ${VAR:-default}, ${VAR-default},
    ${VAR:?error}, ${VAR?error}, ${VAR:+other}, ${VAR+other}, and $$ for a literal $."""
    if isinstance(value, dict):
        return {k: interpolate(v, env) for k, v in value.items()}
    if isinstance(value, list):
        return [interpolate(v, env) for v in value]
    if not isinstance(value, str):
        return value

    def substitute(match: re.Match) -> str:
        if match.group(0) == "$$":
            return "$"
        name = match.group(1) or match.group(4)
        op, arg = match.group(2), match.group(3)
        current = env.get(name)
        missing = current is None or (current == "" and op is not None and op.startswith(":"))
        if op in ("-", ":-"):
            return arg if missing else current
        if op in ("?", ":?"):
            if missing:
                raise ValueError(f"required variable {name} is missing: {arg}")
            return current
        if op in ("+", ":+"):
            return "" if missing else arg
        return current or ""

    result = _VARIABLE.sub(substitute, value)
    if "${" in result.replace("$${", ""):
        raise ValueError(f"interpolation this test does not know: {value!r}")
    return result


def load(env: dict[str, str] | None = None, *, profiles: bool = False) -> dict[str, Any]:
    """The file as compose sees it with `env` (plus what it requires) set;
    without `profiles`, only the services a plain `docker compose up` starts."""
    config = interpolate(yaml.safe_load(COMPOSE_FILE.read_text()), {**REQUIRED, **(env or {})})
    if not profiles:
        config["services"] = {n: s for n, s in config["services"].items() if not s.get("profiles")}
    return config


def test_interpolation_follows_compose_rules():
    env = {"SET": "x", "EMPTY": ""}
    assert interpolate("${SET:-d} ${EMPTY:-d} ${EMPTY-d} ${UNSET-d} $SET $$HOME", env) == "x d  d x $HOME"
    assert interpolate("${SET:+a}|${EMPTY:+a}|${EMPTY+a}|${UNSET+a}", env) == "a||a|"
    with pytest.raises(ValueError, match="needed"):
        interpolate("${EMPTY:?needed}", env)


def test_the_stack_needs_a_redis_password():
    with pytest.raises(ValueError, match="SPOOL_REDIS_PASSWORD"):
        interpolate(yaml.safe_load(COMPOSE_FILE.read_text()), {})


def test_compose_file_matches_the_specification():
    schema = json.loads(SCHEMA.read_text())
    jsonschema.Draft7Validator.check_schema(schema)
    validator = jsonschema.Draft7Validator(schema)
    validator.validate(load(profiles=True))
    # Interpolated with every variable the file reads set, too.
    variables = set(re.findall(r"\$\{([A-Z_]+)", COMPOSE_FILE.read_text()))
    validator.validate(load({name: "1" for name in variables}, profiles=True))


def test_cluster_profile_is_a_6_node_cluster_the_streams_can_use():
    services = load(profiles=True)["services"]
    nodes = [name for name, s in services.items() if s.get("profiles") == ["cluster"] and name.startswith("redis-node")]
    assert len(nodes) == 6
    config = yaml.safe_load(COMPOSE_FILE.read_text())["configs"]["cluster-node"]["content"]
    assert "cluster-enabled yes" in config and "appendonly yes" in config
    init = services["redis-cluster-init"]
    assert init["profiles"] == ["cluster"] and "--cluster-replicas 1" in init["command"][-1]
    assert set(init["depends_on"]) == set(nodes)
    assert "SPOOL_STREAMS_REDIS_URL" in services["worker"]["environment"]
    assert "SPOOL_STREAMS_REDIS_URL" in services["gateway"]["environment"]


def test_compose_file_shape():
    config = load()
    services = config["services"]
    assert set(services) == {"redis", "gateway", "worker", "mock-upstream", "nginx"}

    assert [name for name, s in services.items() if "ports" in s] == ["nginx"]
    assert services["worker"]["networks"] == ["back", "upstream"]
    assert services["nginx"]["networks"] == ["front"]
    # Redis and the mock share no network; nothing on `back` reaches out.
    assert services["mock-upstream"]["networks"] == ["upstream"]
    assert services["redis"]["networks"] == ["back"] and config["networks"]["back"]["internal"] is True
    assert services["gateway"]["deploy"]["replicas"] >= 2
    assert "container_name" not in services["gateway"]  # or it could not scale
    assert services["redis"]["command"][1:3] == ["--appendonly", "yes"]

    for name, service in services.items():
        for dependency, rule in service.get("depends_on", {}).items():
            assert rule["condition"] == "service_healthy", (name, dependency)
            assert "healthcheck" in services[dependency], dependency

    for name in PYTHON_SERVICES:
        assert services[name]["build"]["dockerfile"] == "Dockerfile"
        assert services[name]["image"] == services["gateway"]["image"]
    assert services["worker"]["environment"]["OPENAI_BASE_URL"] == "http://mock-upstream:8090/v1"

    # nginx waits a few heartbeats, never the length of an answer.
    heartbeat = float(services["gateway"]["environment"]["SPOOL_HEARTBEAT_INTERVAL"])
    read_timeout = float(services["nginx"]["environment"]["SPOOL_NGINX_READ_TIMEOUT"].removesuffix("s"))
    assert 2 * heartbeat <= read_timeout <= 120
    # The image's nginx listens on the port compose publishes, on loopback
    # unless the operator says otherwise.
    assert services["nginx"]["ports"][0] == "127.0.0.1:8080:" + dockerfile_env()["SPOOL_NGINX_LISTEN"]
    published = load({"SPOOL_HTTP_BIND": "0.0.0.0", "SPOOL_HTTP_PORT": "443"})["services"]["nginx"]["ports"][0]
    assert published == "0.0.0.0:443:" + dockerfile_env()["SPOOL_NGINX_LISTEN"]


# Every security setting of the gateway, with a value to recognise it by.
SECURITY_SETTINGS = {
    "SPOOL_SECRET_KEY": "s" * 40,
    "SPOOL_SECRET_KEY_PREVIOUS": "p" * 40,
    "SPOOL_ALLOW_OPEN": "0",
    "SPOOL_CORS_ORIGINS": "https://chat.example.com",
    "SPOOL_DEFAULT_MODEL": "gpt-4o-mini",
    "SPOOL_MODELS": "gpt-4o-mini,gpt-4o",
    "SPOOL_MAX_BODY_BYTES": "500000",
    "SPOOL_MAX_MESSAGES": "100",
    "SPOOL_MAX_TOKENS_CAP": "4096",
    "SPOOL_MAX_INPUT_CHARS": "100000",
    "SPOOL_RATE_LIMIT_PER_MINUTE": "120",
    "SPOOL_MAX_CONCURRENT_STREAMS": "8",
    "SPOOL_MAX_QUEUE_DEPTH": "1000",
}


def test_the_gateway_receives_every_security_setting(tmp_path):
    keys = tmp_path / "api_keys"
    keys.write_text("k" * 40 + "\n")
    password = "redis-password-0123456789"
    config = load({**SECURITY_SETTINGS, "SPOOL_API_KEYS_FILE": str(keys), "SPOOL_REDIS_PASSWORD": password})
    services = config["services"]
    env = services["gateway"]["environment"]
    for name, value in SECURITY_SETTINGS.items():
        assert env[name] == value, name
    # The keys arrive as a compose secret, never in the environment.
    assert env["SPOOL_API_KEYS_FILE"] == "/run/secrets/spool_api_keys"
    assert services["gateway"]["secrets"] == ["spool_api_keys"]
    assert config["secrets"]["spool_api_keys"]["file"] == str(keys)
    assert not [name for name, s in services.items() if "SPOOL_API_KEYS" in s.get("environment", {})]
    # Redis takes a password, and every service that talks to it has it.
    assert services["redis"]["command"][-2:] == ["--requirepass", password]
    assert services["redis"]["environment"]["REDISCLI_AUTH"] == password
    for name in ("gateway", "worker"):
        assert services[name]["environment"]["REDIS_URL"] == f"redis://:{password}@redis:6379/0", name
    # What the gateway makes of it (the file as the container would see it).
    settings = Settings.from_env({**env, "SPOOL_API_KEYS_FILE": str(keys)})
    assert check(settings).keys == ("k" * 40,)


def test_unconfigured_the_gateway_refuses_to_start_open():
    env = load()["services"]["gateway"]["environment"]
    assert env["SPOOL_API_KEYS_FILE"] == "" and env["SPOOL_ALLOW_OPEN"] == "0"
    with pytest.raises(ConfigError, match="SPOOL_ALLOW_OPEN=1"):
        check(Settings.from_env(env))
    # ...unless the operator says so.
    check(Settings.from_env(load({"SPOOL_ALLOW_OPEN": "1"})["services"]["gateway"]["environment"]))
    # The placeholder mounted in place of a keys file holds no key.
    placeholder = load()["secrets"]["spool_api_keys"]["file"]
    with pytest.raises(ConfigError, match="holds no key"):
        check(Settings.from_env({"SPOOL_API_KEYS_FILE": str(ROOT / placeholder)}))


def test_images_run_as_non_root_and_hold_no_secrets():
    dockerfile = (ROOT / "Dockerfile").read_text()
    users = re.findall(r"^USER\s+(\S+)", dockerfile, re.M)
    assert users and users[-1].split(":")[0] not in ("root", "0")
    for path in (ROOT / "Dockerfile", ROOT / "nginx" / "Dockerfile"):
        instructions = [line for line in path.read_text().splitlines() if re.match(r"(ENV|ARG)\s", line)]
        assert not [line for line in instructions if re.search(r"KEY|TOKEN|SECRET|PASSWORD", line)], path


def test_image_requirements_pin_what_pyproject_pins():
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())
    lock = {}
    for line in (ROOT / "docker" / "requirements.txt").read_text().splitlines():
        if line and not line.startswith("#"):
            req = Requirement(line)
            lock[canonicalize_name(req.name)] = str(req.specifier)
    for dependency in pyproject["project"]["dependencies"]:
        req = Requirement(dependency)
        assert lock.get(canonicalize_name(req.name)) == str(req.specifier), dependency
    assert all(spec.startswith("==") for spec in lock.values())


def test_nginx_template_placeholders_have_image_defaults():
    defaults = {k for k in dockerfile_env() if k.startswith("SPOOL_NGINX_")}
    assert placeholders(TEMPLATE.read_text()) == defaults


# --- the stack, from the file's own commands ----------------------------------

def container_ports(service: dict[str, Any]) -> list[int]:
    return [int(p) for p in service.get("expose", [])] + [int(p.rsplit(":", 1)[1]) for p in service.get("ports", [])]


class Localizer:
    """Rewrites a service's strings for loopback: `<service>:<port>` of another
    service and the service's own listening address become 127.0.0.1 and the
    port it was given here."""

    def __init__(self, services: dict[str, Any], ports: dict[str, list[int]]) -> None:
        self.container = {name: container_ports(s) for name, s in services.items()}
        self.ports = ports  # service -> local port per replica

    def __call__(self, value: Any, service: str, replica: int = 0) -> Any:
        if isinstance(value, list):
            return [self(v, service, replica) for v in value]
        if isinstance(value, dict):
            return {k: self(v, service, replica) for k, v in value.items()}
        value = str(value)
        for other, ports in self.container.items():
            for port in ports:
                if other != "gateway":  # several replicas: see gateway_servers()
                    value = value.replace(f"{other}:{port}", f"127.0.0.1:{self.ports[other][0]}")
        own = self.container[service][0] if self.container[service] else None
        if own is not None:
            mine = self.ports[service][replica]
            value = re.sub(rf"(0\.0\.0\.0|127\.0\.0\.1):{own}\b", f"127.0.0.1:{mine}", value)
            if value == str(own):
                value = str(mine)
        return "127.0.0.1" if value == "0.0.0.0" else value


def healthy(test: list[str], env: dict[str, str]) -> bool:
    assert test[0] == "CMD", test
    try:
        return subprocess.run(test[1:], env=env, capture_output=True, timeout=10).returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        return False


def start_order(services: dict[str, Any]) -> list[str]:
    order: list[str] = []

    def visit(name: str) -> None:
        for dependency in services[name].get("depends_on", {}):
            visit(dependency)
        if name not in order:
            order.append(name)

    for name in services:
        visit(name)
    return order


@pytest.mark.integration
def test_compose_stack_runs_from_its_own_commands(tmp_path):
    for tool in ("redis-server", "redis-cli", "nginx", "wget"):
        require(bool(shutil.which(tool)) or Path("/usr/sbin", tool).exists(), f"{tool} is not installed")
    prefix = f"t{os.urandom(6).hex()}"
    # Configured as production is: keys from a file, a secret, a Redis
    # password, a real-looking upstream key (the mock ignores it).
    api_key = "sk-spool-" + os.urandom(16).hex()
    keys_file = tmp_path / "api_keys"
    keys_file.write_text(f"# the test's key\n{api_key}\n")
    secrets_ = {
        "SPOOL_SECRET_KEY": "secret-" + os.urandom(16).hex(),
        "SPOOL_REDIS_PASSWORD": "redis" + os.urandom(12).hex(),
        "OPENAI_API_KEY": "sk-upstream-" + os.urandom(12).hex(),
    }
    config = load({"SPOOL_KEY_PREFIX": prefix, "SPOOL_QUEUE": prefix, "SPOOL_API_KEYS_FILE": str(keys_file),
                   **secrets_})
    services = config["services"]
    replicas = {name: int(s.get("deploy", {}).get("replicas", 1)) for name, s in services.items()}
    ports = {name: [free_port() for _ in range(replicas[name])] for name in services}
    localize = Localizer(services, ports)
    # A service's secrets are files at /run/secrets/<name>: here, their sources.
    mounts = {f"/run/secrets/{name}": str(Path(ROOT, secret["file"])) for name, secret in config["secrets"].items()}
    # The services see only what the file gives them, plus PATH to find the
    # commands (`spool` from this venv, redis-server, python).
    base_env = {k: v for k, v in os.environ.items()
                if not k.startswith(("SPOOL_", "OPENAI_", "REDIS_"))}
    base_env["PATH"] = f"{Path(sys.executable).parent}:{base_env.get('PATH', '')}"

    running: list[tuple[str, subprocess.Popen, Path]] = []
    nginx = None

    def logs() -> str:
        return "\n".join(f"--- {name} ---\n" + "\n".join(log.read_text(errors="replace").splitlines()[-30:])
                         for name, _, log in running)

    try:
        for name in start_order(services):
            service = services[name]
            environment = {k: mounts.get(v, v) for k, v in localize(service.get("environment", {}), name).items()}
            env = {**base_env, **environment}
            if name == "nginx":  # the image's own command: render the template, run nginx
                overrides = dict(localize(service["environment"], name))
                servers = overrides["SPOOL_NGINX_GATEWAYS"]
                assert servers.startswith(f"server gateway:{container_ports(services['gateway'])[0]} "), servers
                overrides["SPOOL_NGINX_GATEWAYS"] = gateway_servers([f"127.0.0.1:{p}" for p in ports["gateway"]], servers)
                nginx = start_nginx(tmp_path / "nginx", [], **overrides)
                ports["nginx"] = [int(nginx.url.rsplit(":", 1)[1])]
            else:
                for replica in range(replicas[name]):
                    workdir = tmp_path / f"{name}-{replica}"
                    workdir.mkdir()
                    log = workdir / "output.log"
                    with open(log, "wb") as out:
                        popen = subprocess.Popen(localize(service["command"], name, replica), env=env,
                                                 cwd=workdir, stdout=out, stderr=subprocess.STDOUT)
                    running.append((f"{name}-{replica}", popen, log))
            if "healthcheck" in service:  # what `condition: service_healthy` waits for
                for replica in range(replicas[name]):
                    test = localize(service["healthcheck"]["test"], name, replica)
                    wait_until(lambda: healthy(test, env), 30, f"{name} #{replica} to be healthy: {test}")

        # The keys reached the gateways: no key, no answer.
        refused = requests.post(f"{nginx.url}/v1/streams", json=chat("no key"), timeout=10)
        assert refused.status_code == 401, refused.text
        assert refused.headers["Server"] == "nginx"  # server_tokens off: no version
        assert refused.headers["Cache-Control"] == "no-store"
        auth = {"Authorization": f"Bearer {api_key}"}
        prompt = "compose, end to end"
        # A deadline of its own: a stuck stream would heartbeat forever.
        pool = ThreadPoolExecutor(max_workers=1)
        try:
            response = post_stream(nginx.url, chat(prompt, max_tokens=20), headers=auth)
            token = response.headers["X-Stream-Token"]
            received = pool.submit(lambda: read(response)).result(30)
            # The stream again, by its read token alone (as EventSource reads it).
            events = requests.get(f"{nginx.url}/v1/streams/{received.stream_id}/events",
                                  params={"token": token, "after": 0}, headers={"Accept": "application/x-ndjson"},
                                  stream=True, timeout=30)
            replayed = pool.submit(lambda: read(events)).result(30)
        finally:
            pool.shutdown(wait=False)  # the processes stop below, which ends a stuck read
        assert received.terminal["type"] == "done" and received.terminal["finish_reason"] == "length"
        assert received.text == expected_text(prompt, 20)
        assert replayed.text == received.text
        # ...through the compose file's Redis (which wants its password) and
        # mock, not a default that happens to answer on this machine.
        with pytest.raises(redis.AuthenticationError):
            redis.Redis(port=ports["redis"][0]).get("x")
        store = redis.Redis(port=ports["redis"][0], password=secrets_["SPOOL_REDIS_PASSWORD"])
        assert any(received.stream_id in key.decode() for key in store.scan_iter(f"{prefix}:*"))
        store.close()
        stats = requests.get(f"http://127.0.0.1:{ports['mock-upstream'][0]}/_mock/stats", timeout=5).json()
        assert len(stats) == 1
        page = requests.get(nginx.url + "/", timeout=5)
        assert page.status_code == 200 and "<title>" in page.text
    except BaseException:
        print(logs())
        raise
    finally:
        if nginx:
            nginx.stop()
        for _, popen, _ in reversed(running):
            popen.terminate()
        for _, popen, _ in running:
            try:
                popen.wait(timeout=20)
            except subprocess.TimeoutExpired:
                popen.kill()
                popen.wait()

    # Every log of the run, the processes stopped (so flushed): no key, no
    # token, no password, no secret. The read happened and was logged.
    log_files = [log for _, _, log in running] + sorted(p for p in (tmp_path / "nginx").iterdir()
                                                        if p.suffix in (".log", ".out"))
    texts = {str(path): path.read_text(errors="replace") for path in log_files}
    secret_values = {"the API key": api_key, "the read token": token, **secrets_}
    for path, text in texts.items():
        for what, value in secret_values.items():
            assert value not in text, f"{what} is in {path}"
        # The token's signature alone, should a log have cut it apart.
        assert token.partition(".")[2] not in text, f"the token's signature is in {path}"
    access = (tmp_path / "nginx" / "access.log").read_text()
    assert f"/v1/streams/{received.stream_id}/events" in access
    assert any(f"/v1/streams/{received.stream_id}/events" in text and "GET" in text
               for path, text in texts.items() if "gateway" in path)
