"""Checking a chat request before anything is enqueued."""

from __future__ import annotations

import json
from typing import Any

from flask import Request

from gateway.errors import ApiError
from spool.settings import Settings

ROLES = frozenset({"system", "user", "assistant"})


def _invalid(message: str, param: str | None = None) -> ApiError:
    return ApiError(422, "invalid_request", message, param=param)


def parse_chat_request(request: Request, settings: Settings) -> dict[str, Any]:
    """The validated request: messages, model, and the optional sampling fields.

    Raises ApiError (413, 415, 400 or 422) for anything else."""
    return validate_chat(read_json_body(request, settings), settings)


# Deeper than any chat request needs; bounded so a hostile body is a 400,
# not a RecursionError in the parser or in whatever walks the result.
MAX_JSON_DEPTH = 32


def read_json_body(request: Request, settings: Settings) -> Any:
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
    _check_tree(body)
    return body


def _too_deep() -> ApiError:
    return ApiError(400, "invalid_json", f"body is nested deeper than {MAX_JSON_DEPTH} levels")


def _check_tree(body: Any) -> None:
    """Raise ApiError 400 past MAX_JSON_DEPTH or at a lone surrogate; iterative,
    so the check itself cannot recurse too deep."""
    stack = [(body, 0)]
    while stack:
        value, depth = stack.pop()
        if isinstance(value, str):
            _check_text(value)
        elif isinstance(value, (list, dict)):
            if depth >= MAX_JSON_DEPTH:
                raise _too_deep()
            if isinstance(value, dict):
                for key in value:
                    _check_text(key)
                value = value.values()
            stack.extend((item, depth + 1) for item in value)


def _check_text(value: str) -> None:
    if value.isascii():
        return
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise ApiError(400, "invalid_json", "body holds a lone UTF-16 surrogate (\\ud800-\\udfff): not text") from None


def validate_chat(body: Any, settings: Settings) -> dict[str, Any]:
    """The validated chat request from a parsed body; ApiError 422 otherwise."""
    if not isinstance(body, dict):
        raise _invalid("body must be a JSON object")
    unknown = set(body) - {"messages", "model", "temperature", "max_tokens"}
    if unknown:
        raise _invalid(f"unknown field(s): {', '.join(sorted(unknown))}")
    messages = _messages(body.get("messages"), settings)
    total = sum(len(m["content"]) for m in messages)
    if settings.max_input_chars and total > settings.max_input_chars:
        raise _invalid(f"messages hold {total} characters; at most {settings.max_input_chars}", "messages")
    return {
        "messages": messages,
        "model": _model(body.get("model"), settings),
        "temperature": _temperature(body.get("temperature")),
        "max_tokens": _max_tokens(body.get("max_tokens"), settings),
    }


def _messages(value: Any, settings: Settings) -> list[dict[str, str]]:
    if not isinstance(value, list) or not value:
        raise _invalid("messages must be a non-empty array", "messages")
    if len(value) > settings.max_messages:
        raise _invalid(f"at most {settings.max_messages} messages", "messages")
    out = []
    for i, message in enumerate(value):
        if not isinstance(message, dict) or set(message) != {"role", "content"}:
            raise _invalid(f"messages[{i}] must be an object with exactly role and content", f"messages[{i}]")
        if not isinstance(message["role"], str) or message["role"] not in ROLES:
            raise _invalid(f"messages[{i}].role must be one of {', '.join(sorted(ROLES))}", f"messages[{i}].role")
        if not isinstance(message["content"], str):
            raise _invalid(f"messages[{i}].content must be a string", f"messages[{i}].content")
        out.append({"role": message["role"], "content": message["content"]})
    return out


def _model(value: Any, settings: Settings) -> str:
    if value is None:
        return settings.default_model
    if not isinstance(value, str) or not value.strip() or len(value) > 200:
        raise _invalid("model must be a non-empty string", "model")
    allowed = allowed_models(settings)
    if allowed and value not in allowed:
        raise _invalid(f"model must be one of {', '.join(sorted(allowed))}", "model")
    return value


def allowed_models(settings: Settings) -> frozenset[str]:
    """SPOOL_MODELS plus the default model; empty when any model is allowed."""
    return frozenset([*settings.model_ids, settings.default_model]) if settings.models else frozenset()


def _temperature(value: Any) -> float | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value <= 2:
        raise _invalid("temperature must be a number from 0 to 2", "temperature")
    return float(value)


def _max_tokens(value: Any, settings: Settings) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= settings.max_tokens_cap:
        raise _invalid(f"max_tokens must be an integer from 1 to {settings.max_tokens_cap}", "max_tokens")
    return value
