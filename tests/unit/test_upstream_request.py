"""worker/upstream.py against a capturing upstream on loopback: what the
upstream receives, and what its refusals become."""

from __future__ import annotations

import json

import pytest

from spool.errors import UpstreamError
from spool.settings import Settings
from tests.capture_upstream import MESSAGES, PARAMS, CaptureUpstream
from worker.upstream import Upstream

KEY = "sk-spool-test-0123456789abcdef"
ODD_KEY = "key_without_a_known_shape_31415"


@pytest.fixture
def upstream():
    with CaptureUpstream() as server:
        yield server


def client_for(server: CaptureUpstream, key: str = KEY) -> Upstream:
    return Upstream(Settings(openai_base_url=server.url, openai_api_key=key, upstream_max_retries=0), connections=2)


def answer(upstream: Upstream, request: dict) -> str:
    return "".join(piece.text or "" for piece in upstream.open(request))


def test_every_parameter_reaches_the_upstream_unchanged(upstream):
    request = {"model": "gpt-test", "messages": MESSAGES, "params": PARAMS, "request_id": "r1"}
    assert answer(client_for(upstream), request) == "Hello"
    (received,) = upstream.requests
    # Compared as JSON text, so a float turned int or a key reordered inside
    # a schema would show too.
    expected = {"model": "gpt-test", "messages": MESSAGES, **PARAMS,
                "stream": True, "stream_options": {"include_usage": True}}
    assert json.dumps(received, sort_keys=True) == json.dumps(expected, sort_keys=True)
    assert upstream.headers[0]["authorization"] == f"Bearer {KEY}"


def test_the_sdks_transform_of_a_request_changes_nothing():
    """worker/upstream.py sends the request past the SDK's `create` transform
    (as `extra_body`), because for spool's JSON requests that transform is
    the identity; this fails loudly the day a pinned SDK renames or encodes
    a field of a chat request (a private helper, used only here)."""
    from openai._utils import maybe_transform
    from openai.types.chat.completion_create_params import CompletionCreateParamsStreaming

    body = {"model": "gpt-test", "messages": MESSAGES, **PARAMS, "stream": True,
            "stream_options": {"include_usage": True}}
    assert json.dumps(maybe_transform(body, CompletionCreateParamsStreaming), sort_keys=True) == \
        json.dumps(body, sort_keys=True)


def test_parameters_named_like_the_sdks_options_go_in_the_body(upstream):
    params = {"timeout": 5, "extra_body": {"a": 1}, "extra_headers": {"x": "y"}, "stream": False, "model": "other"}
    answer(client_for(upstream), {"model": "m", "messages": MESSAGES[:1], "params": params})
    received = upstream.requests[0]
    # Never the SDK's own options, and never spool's stream settings overridden.
    assert received["timeout"] == 5 and received["extra_body"] == {"a": 1} and received["extra_headers"] == {"x": "y"}
    assert received["stream"] is True and received["model"] == "m" and "x" not in upstream.headers[0]


def test_a_request_stored_before_params_still_runs(upstream):
    answer(client_for(upstream), {"model": "m", "messages": MESSAGES[:1], "temperature": 0.3, "max_tokens": 9})
    assert upstream.requests[0]["temperature"] == 0.3 and upstream.requests[0]["max_tokens"] == 9


def refusal(upstream: CaptureUpstream, status: int, error: dict, key: str = KEY) -> UpstreamError:
    upstream.fail(status, {"error": error})
    with pytest.raises(UpstreamError) as info:
        client_for(upstream, key).open({"model": "m", "messages": MESSAGES[:1], "params": {}})
    assert info.value.__cause__ is None and info.value.__suppress_context__
    return info.value


def test_an_upstream_refusal_keeps_its_message_code_status_and_param(upstream):
    error = refusal(upstream, 400, {
        "message": "Invalid schema for function 'get_weather': 'object' is not valid under any of the given schemas.",
        "type": "invalid_request_error", "param": "tools[0].function.parameters", "code": "invalid_function_parameters"})
    assert error.code == "upstream_rejected" and error.status == 400
    assert error.param == "tools[0].function.parameters" and error.upstream_code == "invalid_function_parameters"
    assert error.message.startswith("Invalid schema for function 'get_weather'")
    assert error.event_data() == {"code": "upstream_rejected", "message": error.message, "status": 400,
                                  "param": "tools[0].function.parameters",
                                  "upstream_code": "invalid_function_parameters"}


def test_context_length_and_unknown_model_refusals(upstream):
    error = refusal(upstream, 400, {"message": "This model's maximum context length is 128000 tokens.",
                                    "type": "invalid_request_error", "param": "messages",
                                    "code": "context_length_exceeded"})
    assert (error.status, error.param, error.upstream_code) == (400, "messages", "context_length_exceeded")
    error = refusal(upstream, 404, {"message": "The model `nope` does not exist", "type": "invalid_request_error",
                                    "param": None, "code": "model_not_found"})
    assert (error.code, error.status, error.param, error.upstream_code) == ("upstream_rejected", 404, None,
                                                                           "model_not_found")
    assert error.event_data() == {"code": "upstream_rejected", "message": "The model `nope` does not exist",
                                  "status": 404, "upstream_code": "model_not_found"}


@pytest.mark.parametrize("key", [KEY, ODD_KEY])
def test_an_upstream_body_echoing_the_key_does_not_leak_it(upstream, key):
    echo = f"invalid request from key {key} (Authorization: Bearer {key}); also sk-other-secret-key-999"
    error = refusal(upstream, 400, {"message": echo, "param": key, "code": f"bad_{key}"}, key=key)
    shown = json.dumps(error.event_data()) + str(error) + repr(error.args)
    assert key not in shown and "sk-other-secret-key-999" not in shown and "[redacted]" in error.message
    # The 401 case never passes the upstream's words on at all.
    error = refusal(upstream, 401, {"message": f"Incorrect API key provided: {key}", "code": "invalid_api_key"},
                    key=key)
    assert key not in json.dumps(error.event_data())
    assert (error.code, error.status, error.message) == ("upstream_auth", 401,
                                                         "the model refused the API key (HTTP 401)")


def test_refusal_messages_are_capped_and_printable(upstream):
    error = refusal(upstream, 422, {"message": "bad\n\x00value " + "x" * 5000, "param": "p" * 500, "code": 17})
    assert error.message.startswith("bad value x") and len(error.message) == 500
    assert len(error.param) == 100 and error.upstream_code == "17" and error.status == 422


def test_server_errors_and_rate_limits_keep_only_their_status(upstream):
    error = refusal(upstream, 429, {"message": "slow down", "code": "rate_limit_exceeded"})
    assert error.event_data() == {"code": "upstream_rate_limited", "message": "the model is rate limited (HTTP 429)",
                                  "status": 429}
    error = refusal(upstream, 503, {"message": f"overloaded {KEY}"})
    assert error.event_data() == {"code": "upstream_error", "message": "the model failed (HTTP 503)", "status": 503}


def test_a_compressed_answer_is_decoded(upstream):
    # Plain bodies are read raw, past httpx's decoders; a compressed one still goes through them.
    upstream.gzip = True
    assert answer(client_for(upstream), {"model": "m", "messages": MESSAGES}) == "Hello"
    assert upstream.headers[-1].get("accept-encoding")


def test_the_warm_up_sends_nothing_and_leaves_the_client_as_it_was(upstream):
    client = client_for(upstream)
    client.warm()
    assert upstream.requests == []  # the warm-up answer came from an in-process transport
    request = {"model": "gpt-test", "messages": MESSAGES, "request_id": "r1"}
    assert answer(client, request) == "Hello"
    assert len(upstream.requests) == 1 and upstream.headers[0]["authorization"] == f"Bearer {KEY}"
