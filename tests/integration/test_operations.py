"""Metrics, structured logs and readiness on real processes."""

from __future__ import annotations

import json

import requests
from prometheus_client.parser import text_string_to_metric_families

from tests.client import chat, get_events, post_stream, read
from tests.stack import free_port, http_ok, wait_until


def samples(url: str) -> dict[tuple[str, tuple], float]:
    """Every sample at `url`, by (name, sorted labels)."""
    response = requests.get(url, timeout=10)
    response.raise_for_status()
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(response.text)
        for s in family.samples
    }


def json_lines(path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.startswith("{")]


def test_metrics_logs_and_readiness(stack_factory):
    worker_port = free_port()
    stack = stack_factory(gateways=0, env={"SPOOL_WORKER_METRICS_PORT": str(worker_port)},
                          mock_args=["--ttft-ms", "20", "--tokens-per-second", "400", "--tokens", "40"])
    # Two gunicorn workers: every scrape must show the sum of both processes.
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    gateway = stack.spawn("gateway-2w", "gateway", "--bind", f"127.0.0.1:{port}", "--workers", "2")
    stack._wait(gateway, lambda: http_ok(url + "/healthz"), "the gateway")

    response = requests.post(url + "/v1/streams", json=chat("observed"), stream=True, timeout=30,
                             headers={"Accept": "application/x-ndjson", "X-Request-ID": "req-observed"})
    assert response.headers["X-Request-ID"] == "req-observed"
    first = read(response)
    assert first.terminal["type"] == "done"
    read(get_events(url, first.stream_id, after=2))
    for _ in range(2):
        assert read(post_stream(url, chat("more"))).terminal["type"] == "done"
    assert read(post_stream(url, chat("boom", model="mock-error"))).terminal["code"] == "upstream_error"
    generated = requests.post(url + "/v1/streams", json=chat("x"), timeout=10)
    assert len(generated.headers["X-Request-ID"]) == 32  # made up when the client sent none

    for _ in range(4):
        gw = samples(url + "/metrics")
        assert gw[("spool_streams_created_total", (("api", "spool"),))] == 5
        assert gw[("spool_gateway_resumes_total", ())] == 1
        assert gw[("spool_gateway_stream_responses_total", (("format", "ndjson"),))] == 5
        assert gw[("spool_gateway_active_streams", ())] == 0
        assert ("spool_queue_depth", (("queue", stack.prefix),)) in gw

    read(get_events(url, generated.headers["X-Stream-Id"]))
    # A generation's samples land just after its terminal event: wait for the job to wind up.
    worker_url = f"http://127.0.0.1:{worker_port}/metrics"
    wait_until(lambda: samples(worker_url)[("spool_worker_slots_in_use", ())] == 0, 30, "idle worker slots")
    wk = samples(worker_url)
    assert wk[("spool_streams_finished_total", (("outcome", "done"),))] == 4
    assert wk[("spool_streams_finished_total", (("outcome", "error"),))] == 1
    # Every failed upstream call counts: the first and its one rerun (SPOOL_UPSTREAM_RESET_RETRIES).
    assert wk[("spool_upstream_errors_total", (("code", "upstream_error"),))] == 2
    assert wk[("spool_tokens_total", ())] == 4 * 40
    assert wk[("spool_time_to_first_token_seconds_count", ())] == 4
    assert wk[("spool_queue_wait_seconds_count", ())] == 5
    assert wk[("spool_worker_slots", ())] == 64
    assert wk[("spool_worker_slots_in_use", ())] == 0

    gateway_lines = json_lines(gateway.log_path)
    assert any(line.get("request_id") == "req-observed" and line.get("stream_id") == first.stream_id
               for line in gateway_lines)
    worker_log = next(p for p in stack.processes if p.name.startswith("worker"))
    worker_lines = json_lines(worker_log.log_path)
    assert any(line.get("request_id") == "req-observed" and line.get("stream_id") == first.stream_id
               for line in worker_lines)

    ready = requests.get(url + "/readyz", timeout=10)
    assert ready.status_code == 200 and ready.json()["workers"] == 1
    worker_log.stop()
    not_ready = requests.get(url + "/readyz", timeout=10)
    assert not_ready.status_code == 503 and not_ready.json()["error"]["code"] == "no_workers"


def test_the_log_level_holds_for_rqs_own_loggers_too(stack_factory):
    # RQ sets its loggers to INFO when imported: two lines per answer unless
    # the worker hands SPOOL_LOG_LEVEL on to them.
    stack = stack_factory(env={"SPOOL_LOG_LEVEL": "WARNING"}, mock_args=["--ttft-ms", "5", "--tokens", "3"])
    assert read(post_stream(stack.base_url, chat("quiet"))).terminal["type"] == "done"
    worker = next(p for p in stack.processes if p.name.startswith("worker"))
    wait_until(lambda: stack.mock_stats()[0]["finished"], 10, "the answer to end")
    lines = json_lines(worker.log_path)
    assert not [line for line in lines if line.get("level") in ("info", "debug")]
