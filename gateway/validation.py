"""Checking a chat request before anything is enqueued.

One request model serves both APIs (docs/protocol.md, "The chat request"):
POST /v1/streams takes the body of POST /v1/chat/completions less `stream` and
`stream_options`. spool checks the JSON type (and range, where it has one) of
every parameter it knows, and the sizes it bounds, then forwards every
parameter to the upstream exactly as sent; the upstream judges the rest (a
tool's schema, the context length). A parameter spool does not know is
forwarded too, unless SPOOL_FORWARD_UNKNOWN_PARAMS=0.

The validated request, stored as JSON in the stream's meta `request` field and
passed to worker/upstream.py `Upstream.open`:

    {"model": str, "messages": [message, ...], "params": {name: value, ...}}

`params` holds every other parameter of the body, unchanged (nulls included).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from flask import Request

from gateway.errors import ApiError
from gateway.messages import RequestError, check_messages, check_tool_choice, check_tools
from spool.settings import Settings

__all__ = ["JsonBody", "RequestError", "allowed_models", "parse_chat_request", "read_json_body", "validate_chat"]

# Nesting of a request's parameters (an object holding an array is depth 2). A
# tool's JSON schema nests two levels per schema level; OpenAI's structured
# outputs allow 10 schema levels, so 64 leaves room and stops pathological bodies.
MAX_PARAM_DEPTH = 64
# Only POST /v1/chat/completions takes these: the native route picks its wire
# format by Accept, and the worker always asks the upstream for usage.
STREAM_PARAMS = frozenset({"stream", "stream_options"})


def parse_chat_request(request: Request, settings: Settings) -> dict[str, Any]:
    """The validated request of POST /v1/streams (see the module docstring).

    Raises ApiError: 413, 415 or 400 for the body, 422 `invalid_request`
    naming the `param` for its content."""
    body = read_json_body(request, settings)
    stream_fields = sorted(STREAM_PARAMS & set(body.value)) if isinstance(body.value, dict) else []
    if stream_fields:
        raise ApiError(422, "invalid_request", f"{stream_fields[0]} is for /v1/chat/completions; "
                       "POST /v1/streams picks its format by Accept", stream_fields[0])
    try:
        return validate_chat(body.value, settings, body.depths)
    except RequestError as exc:
        raise ApiError(422, "invalid_request", exc.message, exc.param) from None


# Any JSON body the gateway reads (MAX_PARAM_DEPTH bounds a chat request's
# parameters more tightly, naming the one at fault): bounded so a hostile
# body is a 400, not a RecursionError in the parser or in whatever walks it.
MAX_JSON_DEPTH = 256


@dataclass(frozen=True)
class JsonBody:
    """A request's JSON body, walked once by read_json_body: its value and,
    for an object, how deep each member nests, counting the body as level 1
    (a scalar member is 1, an array 2, an object in that array 3), so that
    validate_chat can bound each parameter without walking the tree again."""

    value: Any
    depths: Mapping[str, int] = field(default_factory=dict)


def read_json_body(request: Request, settings: Settings) -> JsonBody:
    """The request's JSON body; ApiError 413, 415 or 400 when it is not one:
    too large, not JSON, nested over MAX_JSON_DEPTH levels, or holding a
    string with a lone UTF-16 surrogate (`"\\ud800"`: valid JSON syntax, but
    not text; it could not be stored or sent on)."""
    if request.content_length is not None and request.content_length > settings.max_body_bytes:
        raise ApiError(413, "payload_too_large", f"body is larger than {settings.max_body_bytes} bytes")
    if request.mimetype != "application/json":
        raise ApiError(415, "unsupported_media_type", "send the body as application/json")
    raw = request.get_data(cache=False)
    if len(raw) > settings.max_body_bytes:
        raise ApiError(413, "payload_too_large", f"body is larger than {settings.max_body_bytes} bytes")
    try:
        body = json.loads(raw)
    except RecursionError:
        raise _too_deep() from None
    except (ValueError, UnicodeDecodeError):
        raise ApiError(400, "invalid_json", "body is not valid JSON") from None
    return JsonBody(body, _walk(body))


def _too_deep() -> ApiError:
    return ApiError(400, "invalid_json", f"body is nested deeper than {MAX_JSON_DEPTH} levels")


def _walk(body: Any) -> dict[str, int]:
    """The one walk of a body: raise ApiError 400 past MAX_JSON_DEPTH or at a
    lone surrogate, and return each member's depth (see JsonBody) when the
    body is an object. Iterative, so the walk itself cannot recurse too deep."""
    depths: dict[str, int] = {}
    # (value, depth with the body at 0, the top-level member it is in)
    stack: list[tuple[Any, int, str | None]] = [(body, 0, None)]
    while stack:
        value, depth, member = stack.pop()
        if isinstance(value, str):
            _check_text(value)
        elif isinstance(value, (list, dict)):
            if depth >= MAX_JSON_DEPTH:
                raise _too_deep()
            if member is not None and depth + 1 > depths[member]:
                depths[member] = depth + 1
            if isinstance(value, dict):
                for key in value:
                    _check_text(key)
                if depth == 0:
                    depths.update(dict.fromkeys(value, 1))
                    stack.extend((item, 1, key) for key, item in value.items())
                    continue
                value = value.values()
            stack.extend((item, depth + 1, member) for item in value)
    return depths


def _check_text(value: str) -> None:
    if value.isascii():
        return
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise ApiError(400, "invalid_json", "body holds a lone UTF-16 surrogate (\\ud800-\\udfff): not text") from None


def validate_chat(body: Any, settings: Settings, depths: Mapping[str, int] | None = None) -> dict[str, Any]:
    """The validated request from a parsed body; RequestError naming the bad parameter otherwise.

    `depths`: each member's depth as read_json_body measured it (JsonBody);
    members it does not give (a body built after reading) are measured here.
    `stream` and `stream_options` are the caller's to remove first."""
    if not isinstance(body, dict):
        raise RequestError("body must be a JSON object", "")
    depths = depths or {}
    unmeasured = {name: value for name, value in body.items() if name not in depths}
    if unmeasured:
        depths = {**depths, **_walk(unmeasured)}
    too_deep = next((name for name in body if depths[name] > MAX_PARAM_DEPTH), None)
    if too_deep is not None:
        raise RequestError(f"{too_deep} nests deeper than {MAX_PARAM_DEPTH} levels", too_deep)
    forward_unknown = bool(settings.forward_unknown_params)
    checked = check_messages(body.get("messages"), settings.max_messages, forward_unknown)
    if settings.max_input_chars and checked.chars > settings.max_input_chars:
        raise RequestError(f"messages hold {checked.chars} characters; at most {settings.max_input_chars}", "messages")
    params: dict[str, Any] = {}
    for name, value in body.items():
        if name in ("messages", "model"):
            continue
        check = PARAMS.get(name)
        if check is None:
            if name in STREAM_PARAMS or not forward_unknown:
                raise RequestError(f"unknown parameter: {name}", name)
        elif value is not None:
            check(name, value, settings)
        params[name] = value
    return {"model": _model(body.get("model"), settings), "messages": checked.messages, "params": params}


def allowed_models(settings: Settings) -> frozenset[str]:
    """The models a client may name: SPOOL_MODELS plus the default model, or
    only the default model when SPOOL_MODELS is unset; empty when any model
    is allowed, which takes the explicit `SPOOL_MODELS=*`."""
    if settings.any_model:
        return frozenset()
    return frozenset([*settings.model_ids, settings.default_model])


def _model(value: Any, settings: Settings) -> str:
    if value is None:
        return settings.default_model
    if not isinstance(value, str) or not value.strip() or len(value) > 200:
        raise RequestError("model must be a non-empty string", "model")
    allowed = allowed_models(settings)
    if allowed and value not in allowed:
        raise RequestError(f"model must be one of {', '.join(sorted(allowed))}", "model")
    return value


# Checks of the known parameters: each takes (name, value, settings) and raises
# RequestError. A null value is forwarded unchecked (the upstream's default).
Check = Callable[[str, Any, Settings], None]


def _number(low: float, high: float) -> Check:
    def check(name: str, value: Any, settings: Settings) -> None:
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not low <= value <= high:
            raise RequestError(f"{name} must be a number from {low:g} to {high:g}", name)
    return check


def _integer(low: int | None = None, high: int | None = None) -> Check:
    def check(name: str, value: Any, settings: Settings) -> None:
        if isinstance(value, bool) or not isinstance(value, int) or (
                low is not None and value < low) or (high is not None and value > high):
            span = f" from {low} to {high}" if low is not None and high is not None else ""
            raise RequestError(f"{name} must be an integer{span}", name)
    return check


def _typed(kind: type, label: str) -> Check:
    def check(name: str, value: Any, settings: Settings) -> None:
        if not isinstance(value, kind):
            raise RequestError(f"{name} must be {label}", name)
    return check


def _tokens(name: str, value: Any, settings: Settings) -> None:
    # The same cap for both: each is forwarded as itself, never rewritten
    # into the other (reasoning models refuse max_tokens).
    _integer(1, settings.max_tokens_cap)(name, value, settings)


def _n(name: str, value: Any, settings: Settings) -> None:
    if value != 1 or isinstance(value, bool):
        raise RequestError("only n=1 is supported: a stream holds one answer", name)


def _stop(name: str, value: Any, settings: Settings) -> None:
    if isinstance(value, str):
        return
    if not isinstance(value, list) or len(value) > 4 or not all(isinstance(s, str) for s in value):
        raise RequestError("stop must be a string or an array of up to 4 strings", name)


def _logit_bias(name: str, value: Any, settings: Settings) -> None:
    if not isinstance(value, dict) or not all(
            isinstance(v, (int, float)) and not isinstance(v, bool) and -100 <= v <= 100 for v in value.values()):
        raise RequestError("logit_bias must map token ids to numbers from -100 to 100", name)


def _metadata(name: str, value: Any, settings: Settings) -> None:
    if not isinstance(value, dict) or not all(isinstance(v, str) for v in value.values()):
        raise RequestError("metadata must be an object of strings", name)


def _modalities(name: str, value: Any, settings: Settings) -> None:
    # spool stores and streams text: an audio answer would be lost.
    if not isinstance(value, list) or any(m != "text" for m in value):
        raise RequestError('modalities may only be ["text"]: spool carries text answers', name)


def _response_format(name: str, value: Any, settings: Settings) -> None:
    kind = value.get("type") if isinstance(value, dict) else None
    if kind not in ("text", "json_object", "json_schema"):
        raise RequestError("response_format.type must be text, json_object or json_schema", "response_format.type")
    if kind == "json_schema":
        schema = value.get("json_schema")
        if not isinstance(schema, dict) or not isinstance(schema.get("name"), str):
            raise RequestError("response_format.json_schema must be an object with a name",
                               "response_format.json_schema")


PARAMS: dict[str, Check] = {
    "temperature": _number(0, 2),
    "top_p": _number(0, 1),
    "presence_penalty": _number(-2, 2),
    "frequency_penalty": _number(-2, 2),
    "seed": _integer(),
    "stop": _stop,
    "logit_bias": _logit_bias,
    "logprobs": _typed(bool, "a boolean"),
    "top_logprobs": _integer(0, 20),
    "max_tokens": _tokens,
    "max_completion_tokens": _tokens,
    "n": _n,
    "reasoning_effort": _typed(str, "a string"),
    "verbosity": _typed(str, "a string"),
    "prediction": _typed(dict, "an object"),
    "metadata": _metadata,
    "store": _typed(bool, "a boolean"),
    "service_tier": _typed(str, "a string"),
    "user": _typed(str, "a string"),
    "safety_identifier": _typed(str, "a string"),
    "prompt_cache_key": _typed(str, "a string"),
    "modalities": _modalities,
    "response_format": _response_format,
    "tools": lambda name, value, settings: check_tools(value),
    "tool_choice": lambda name, value, settings: check_tool_choice(value),
    "parallel_tool_calls": _typed(bool, "a boolean"),
}
