"""The one chat request model of both APIs (gateway/validation.py), on
fakeredis: what is accepted and stored, and what is refused before anything
is enqueued or stored."""

from __future__ import annotations

import json

import fakeredis
import pytest

from spool import idempotency
from tests.capture_upstream import MESSAGES, PARAMS

ASK = {"messages": [{"role": "user", "content": "hi"}]}
NATIVE, OPENAI = "/v1/streams", "/v1/chat/completions"


def nested(depth: int) -> object:
    value: object = "leaf"
    for _ in range(depth):
        value = {"a": value}
    return value


@pytest.fixture
def redis_client():
    return fakeredis.FakeRedis()


@pytest.fixture
def chat_app(make_app, redis_client):
    """Apps on the test's fakeredis, with a small max_tokens cap."""
    return lambda **config: make_app(redis_client=redis_client, max_tokens_cap=1000, **config)


@pytest.fixture
def app(chat_app):
    return chat_app()


def stored_request(app, response) -> dict:
    stream_id = response.headers["X-Stream-Id"]
    response.close()
    request = json.loads(app.extensions["spool"].store.meta(stream_id).request)
    assert request.pop("request_id")
    return request


@pytest.mark.parametrize("route", [NATIVE, OPENAI])
def test_every_message_shape_and_parameter_is_stored_as_sent(app, route):
    body = {"model": "gpt-x", "messages": MESSAGES, **PARAMS}
    response = app.test_client().post(route, json={**body, **({"stream": True} if route == OPENAI else {})},
                                      buffered=False)
    assert response.status_code in (200, 202)
    assert stored_request(app, response) == {"model": "gpt-x", "messages": MESSAGES, "params": PARAMS}
    assert app.extensions["spool"].queue.count == 1


def test_nulls_are_forwarded_as_nulls(app):
    body = {**ASK, "temperature": None, "tools": None, "n": None}
    response = app.test_client().post(NATIVE, json=body)
    assert stored_request(app, response)["params"] == {"temperature": None, "tools": None, "n": None}


LONG_NAME = "x" * 65
BAD = [
    # roles and message fields
    ({"messages": [{"role": "function", "content": "x"}]}, "messages[0].role"),
    ({"messages": [{"content": "x"}]}, "messages[0].role"),
    ({"messages": ["hi"]}, "messages[0]"),
    ({"messages": [{"role": "user"}]}, "messages[0].content"),
    ({"messages": [{"role": "user", "content": 5}]}, "messages[0].content"),
    ({"messages": [{"role": "user", "content": []}]}, "messages[0].content"),
    ({"messages": [{"role": "user", "content": "x", "name": 3}]}, "messages[0].name"),
    ({"messages": [{"role": "tool", "content": "x"}]}, "messages[0].tool_call_id"),
    ({"messages": [{"role": "assistant", "content": None, "refusal": 1}]}, "messages[0].refusal"),
    ({"messages": [{"role": "assistant", "tool_calls": {"id": "c"}}]}, "messages[0].tool_calls"),
    ({"messages": [{"role": "assistant", "tool_calls": [{"id": "c", "type": "function",
                                                         "function": {"name": "f", "arguments": {}}}]}]},
     "messages[0].tool_calls[0].function.arguments"),
    ({"messages": [{"role": "assistant", "tool_calls": [{"id": "c", "type": "web"}]}]},
     "messages[0].tool_calls[0].type"),
    # content parts
    ({"messages": [{"role": "user", "content": [{"type": "video", "video": {}}]}]}, "messages[0].content[0].type"),
    ({"messages": [{"role": "user", "content": [{"text": "x"}]}]}, "messages[0].content[0].type"),
    ({"messages": [{"role": "user", "content": ["x"]}]}, "messages[0].content[0]"),
    ({"messages": [{"role": "user", "content": [{"type": "text", "text": 1}]}]}, "messages[0].content[0].text"),
    ({"messages": [{"role": "system", "content": [{"type": "image_url", "image_url": {"url": "https://a/b"}}]}]},
     "messages[0].content[0].type"),
    ({"messages": [{"role": "user", "content": [{"type": "image_url", "image_url": "https://a/b"}]}]},
     "messages[0].content[0].image_url"),
    ({"messages": [{"role": "user", "content": [{"type": "image_url", "image_url": {"url": "file:///etc/passwd"}}]}]},
     "messages[0].content[0].image_url.url"),
    ({"messages": [{"role": "user", "content": [{"type": "input_audio", "input_audio": {"data": "x"}}]}]},
     "messages[0].content[0].input_audio.format"),
    ({"messages": [{"role": "user", "content": [{"type": "file", "file": {"filename": "a.pdf"}}]}]},
     "messages[0].content[0].file"),
    ({"messages": [{"role": "user", "content": [{"type": "text", "text": "x"}] * 257}]}, "messages[0].content"),
    # tools
    ({**ASK, "tools": {"type": "function"}}, "tools"),
    ({**ASK, "tools": [{"type": "retrieval"}]}, "tools[0].type"),
    ({**ASK, "tools": [{"type": "function"}]}, "tools[0].function"),
    ({**ASK, "tools": [{"type": "function", "function": {"description": "no name"}}]}, "tools[0].function.name"),
    ({**ASK, "tools": [{"type": "function", "function": {"name": LONG_NAME}}]}, "tools[0].function.name"),
    ({**ASK, "tools": [{"type": "function", "function": {"name": "f", "parameters": "{}"}}]},
     "tools[0].function.parameters"),
    ({**ASK, "tools": [{"type": "custom", "custom": {"name": "f", "format": "text"}}]}, "tools[0].custom.format"),
    ({**ASK, "tools": [{"type": "function", "function": {"name": f"f{i}"}} for i in range(129)]}, "tools"),
    ({**ASK, "tool_choice": 3}, "tool_choice"),
    ({**ASK, "tool_choice": {"type": "function", "function": {}}}, "tool_choice.function.name"),
    # parameters
    ({**ASK, "n": 2}, "n"),
    ({**ASK, "n": True}, "n"),
    ({**ASK, "temperature": 3}, "temperature"),
    ({**ASK, "top_p": "1"}, "top_p"),
    ({**ASK, "stop": ["a", "b", "c", "d", "e"]}, "stop"),
    ({**ASK, "seed": 1.5}, "seed"),
    ({**ASK, "logit_bias": {"1": 200}}, "logit_bias"),
    ({**ASK, "top_logprobs": 21}, "top_logprobs"),
    ({**ASK, "logprobs": "yes"}, "logprobs"),
    ({**ASK, "max_tokens": 1001}, "max_tokens"),
    ({**ASK, "max_completion_tokens": 1001}, "max_completion_tokens"),
    ({**ASK, "max_completion_tokens": 0}, "max_completion_tokens"),
    ({**ASK, "response_format": {"type": "yaml"}}, "response_format.type"),
    ({**ASK, "response_format": {"type": "json_schema"}}, "response_format.json_schema"),
    ({**ASK, "modalities": ["text", "audio"]}, "modalities"),
    ({**ASK, "metadata": {"a": 1}}, "metadata"),
    ({**ASK, "parallel_tool_calls": 1}, "parallel_tool_calls"),
    ({**ASK, "reasoning_effort": 2}, "reasoning_effort"),
    ({**ASK, "model": ""}, "model"),
    # nesting: the body's depth is bounded wherever it nests
    ({**ASK, "future_param": nested(70)}, "future_param"),
    ({**ASK, "tools": [{"type": "function", "function": {"name": "f", "parameters": nested(70)}}]}, "tools"),
]


@pytest.mark.parametrize("route", [NATIVE, OPENAI])
@pytest.mark.parametrize("body, param", BAD)
def test_bad_input_names_its_parameter_and_leaves_nothing_behind(app, redis_client, route, body, param):
    response = app.test_client().post(route, json=body, headers={"Idempotency-Key": "k1"})
    assert response.status_code == (422 if route == NATIVE else 400), response.get_json()
    error = response.get_json()["error"]
    assert error["param"] == param and error["code"] == "invalid_request"
    assert param.split("[")[0].split(".")[0] in error["message"] or param.startswith("messages")
    assert app.extensions["spool"].queue.count == 0 and redis_client.dbsize() == 0


def test_an_over_deep_body_is_refused(app, redis_client):
    body = json.dumps(ASK)[:-1] + ', "deep": ' + "[" * 100 + "]" * 100 + "}"
    response = app.test_client().post(NATIVE, data=body, content_type="application/json")
    assert response.status_code == 422 and response.get_json()["error"]["param"] == "deep"
    assert redis_client.dbsize() == 0


@pytest.mark.parametrize("route", [NATIVE, OPENAI, "/v1/ui/chat"])
def test_the_body_is_walked_once_for_both_depth_bounds(app, redis_client, route, monkeypatch):
    from gateway import validation

    walked = []
    walk = validation._walk
    monkeypatch.setattr(validation, "_walk", lambda body: walked.append(body) or walk(body))
    ui = {"id": "chat1", "messages": [{"id": "m1", "role": "user", "parts": [{"type": "text", "text": "hi"}]}]}
    body = {**(ui if route == "/v1/ui/chat" else ASK), "future_param": nested(70)}
    response = app.test_client().post(route, json=body)
    assert response.status_code in (400, 422) and response.get_json()["error"]["param"] == "future_param"
    # The UI route's messages are rebuilt from its parts: only they are measured again.
    assert walked[0] == body and [list(w) for w in walked[1:]] == ([] if route != "/v1/ui/chat" else [["messages"]])
    assert redis_client.dbsize() == 0


@pytest.mark.parametrize("field", ["stream", "stream_options"])
def test_the_native_route_refuses_stream_fields(app, redis_client, field):
    response = app.test_client().post(NATIVE, json={**ASK, field: True})
    assert response.status_code == 422 and response.get_json()["error"]["param"] == field
    assert redis_client.dbsize() == 0


@pytest.mark.parametrize("route", [NATIVE, OPENAI])
def test_unknown_parameters_are_refused_when_the_operator_says_so(chat_app, route):
    app = chat_app(forward_unknown_params=0)
    client = app.test_client()
    for body, param in [({**ASK, "future_param": 1}, "future_param"),
                        ({"messages": [{"role": "user", "content": "x", "cache_hint": 1}]}, "messages[0].cache_hint")]:
        response = client.post(route, json=body)
        assert response.status_code in (400, 422) and response.get_json()["error"]["param"] == param
    # Everything spool knows is still accepted.
    known = {k: v for k, v in PARAMS.items() if k != "future_param"}
    response = client.post(route, json={"messages": MESSAGES, **known, **({"stream": True} if route == OPENAI else {})},
                           buffered=False)
    assert response.status_code in (200, 202)
    response.close()


def test_input_limit_counts_the_text_of_parts_tool_calls_and_refusals(chat_app):
    app = chat_app(max_input_chars=10)
    client = app.test_client()
    image = {"type": "image_url", "image_url": {"url": "data:image/png;base64," + "A" * 100}}
    ok = {"messages": [{"role": "user", "content": [{"type": "text", "text": "12345"}, image]},
                       {"role": "assistant", "refusal": "123"}]}
    assert client.post(NATIVE, json=ok).status_code == 202  # 8 characters: the image's data does not count
    for extra in [{"role": "user", "content": [{"type": "text", "text": "abc"}]},
                  {"role": "assistant", "tool_calls": [{"id": "c", "type": "function",
                                                        "function": {"name": "f", "arguments": "{}x"}}]}]:
        response = client.post(NATIVE, json={"messages": [*ok["messages"], extra]})
        assert response.status_code == 422 and response.get_json()["error"]["param"] == "messages"


def test_the_idempotency_fingerprint_covers_every_parameter(app):
    client = app.test_client()
    body = {"messages": MESSAGES, **PARAMS}
    first = client.post(NATIVE, json=body, headers={"Idempotency-Key": "same"})
    again = client.post(NATIVE, json=body, headers={"Idempotency-Key": "same"})
    assert first.status_code == again.status_code == 202
    assert again.headers["Idempotent-Replayed"] == "true" and again.get_json()["id"] == first.get_json()["id"]
    changed = client.post(NATIVE, json={**body, "tool_choice": "auto"}, headers={"Idempotency-Key": "same"})
    assert changed.status_code == 422 and changed.get_json()["error"]["code"] == "idempotency_key_reused"
    # The fingerprint is of the validated request, so key order does not matter.
    reordered = dict(reversed(list(body.items())))
    assert client.post(NATIVE, json=reordered, headers={"Idempotency-Key": "same"}).status_code == 202
    assert idempotency.fingerprint({"a": 1, "b": [1]}) == idempotency.fingerprint({"b": [1], "a": 1})


def test_any_json_is_either_a_request_or_a_request_error():
    """validate_chat never fails otherwise (a 500) on any JSON body."""
    from hypothesis import HealthCheck, given, settings as hsettings
    from hypothesis import strategies as st

    from gateway.validation import PARAMS as CHECKED
    from gateway.validation import RequestError, validate_chat
    from spool.settings import Settings

    scalars = st.none() | st.booleans() | st.integers(-5, 5) | st.floats(-3, 3) | st.sampled_from(
        ["", "text", "function", "custom", "image_url", "user", "tool", "assistant", "json_schema", "data:x"])
    values = st.recursive(scalars, lambda inner: st.lists(inner, max_size=3) | st.dictionaries(
        st.sampled_from(["type", "text", "name", "function", "custom", "url", "image_url", "role", "content",
                         "tool_calls", "id", "arguments", "input", "json_schema", "file", "input_audio", "data",
                         "format", "file_id", "refusal", "tool_call_id"]), inner, max_size=4), max_leaves=12)
    message = st.fixed_dictionaries({"role": st.sampled_from(["system", "developer", "user", "assistant", "tool"])},
                                    optional={"content": values, "tool_calls": values, "name": values,
                                              "tool_call_id": values, "refusal": values})
    body = st.fixed_dictionaries({"messages": st.lists(message, max_size=3) | values},
                                 optional={name: values for name in CHECKED})
    settings = Settings(max_input_chars=50)

    @hsettings(max_examples=200, deadline=None, suppress_health_check=list(HealthCheck), database=None)
    @given(body)
    def check(candidate):
        try:
            request = validate_chat(candidate, settings)
        except RequestError as exc:
            assert isinstance(exc.param, str)
        else:
            assert set(request) == {"model", "messages", "params"}

    check()
