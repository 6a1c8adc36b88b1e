"""Checking a chat request before anything is enqueued."""

from __future__ import annotations

import json
from typing import Any

from flask import Request

from gateway.errors import ApiError
from spool.settings import Settings

ROLES = frozenset({"system", "user", "assistant", "tool"})


def _invalid(message: str) -> ApiError:
    return ApiError(422, "invalid_request", message)


def parse_chat_request(request: Request, settings: Settings) -> dict[str, Any]:
    """The validated request: messages, model, and the optional sampling fields.

    Raises ApiError (413, 415, 400 or 422) for anything else."""
    return validate_chat(read_json_body(request, settings), settings)


def read_json_body(request: Request, settings: Settings) -> Any:
    """The request's JSON body; ApiError 413, 415 or 400 when it is not one."""
    if request.content_length is not None and request.content_length > settings.max_body_bytes:
        raise ApiError(413, "payload_too_large", f"body is larger than {settings.max_body_bytes} bytes")
    if request.mimetype != "application/json":
        raise ApiError(415, "unsupported_media_type", "send the body as application/json")
    raw = request.get_data(cache=False)
    if len(raw) > settings.max_body_bytes:
        raise ApiError(413, "payload_too_large", f"body is larger than {settings.max_body_bytes} bytes")
    try:
        body = json.loads(raw)
    except (ValueError, UnicodeDecodeError):
        raise ApiError(400, "invalid_json", "body is not valid JSON") from None
    return body


def validate_chat(body: Any, settings: Settings) -> dict[str, Any]:
    """The validated chat request from a parsed body; ApiError 422 otherwise."""
    if not isinstance(body, dict):
        raise _invalid("body must be a JSON object")
    unknown = set(body) - {"messages", "model", "temperature", "max_tokens", "tools", "tool_choice"}
    if unknown:
        raise _invalid(f"unknown field(s): {', '.join(sorted(unknown))}")
    messages = _messages(body.get("messages"), settings)
    total = sum(len(m["content"] or "") for m in messages)
    if settings.max_input_chars and total > settings.max_input_chars:
        raise _invalid(f"messages hold {total} characters; at most {settings.max_input_chars}")
    chat = {
        "messages": messages,
        "model": _model(body.get("model"), settings),
        "temperature": _temperature(body.get("temperature")),
        "max_tokens": _max_tokens(body.get("max_tokens"), settings),
    }
    # Interim (branch msg, until the request side is rewritten): tools pass through as given.
    if body.get("tools") is not None:
        if not isinstance(body["tools"], list) or not all(isinstance(t, dict) for t in body["tools"]):
            raise _invalid("tools must be an array of objects")
        chat["tools"] = body["tools"]
    if body.get("tool_choice") is not None:
        if not isinstance(body["tool_choice"], (str, dict)):
            raise _invalid("tool_choice must be a string or an object")
        chat["tool_choice"] = body["tool_choice"]
    return chat


def _messages(value: Any, settings: Settings) -> list[dict[str, str]]:
    if not isinstance(value, list) or not value:
        raise _invalid("messages must be a non-empty array")
    if len(value) > settings.max_messages:
        raise _invalid(f"at most {settings.max_messages} messages")
    out = []
    for i, message in enumerate(value):
        if isinstance(message, dict) and message.get("role") in ("assistant", "tool"):
            out.append(_tool_message(i, message))
            continue
        if not isinstance(message, dict) or set(message) != {"role", "content"}:
            raise _invalid(f"messages[{i}] must be an object with exactly role and content")
        if not isinstance(message["role"], str) or message["role"] not in ROLES:
            raise _invalid(f"messages[{i}].role must be one of {', '.join(sorted(ROLES))}")
        if not isinstance(message["content"], str):
            raise _invalid(f"messages[{i}].content must be a string")
        out.append({"role": message["role"], "content": message["content"]})
    return out


def _tool_message(i: int, message: dict[str, Any]) -> dict[str, Any]:
    """Interim (branch msg): an assistant message (maybe with tool_calls and
    null content) or a `tool` result (tool_call_id, string content)."""
    extra = "tool_calls" if message["role"] == "assistant" else "tool_call_id"
    if set(message) - {"role", "content", extra}:
        raise _invalid(f"messages[{i}] holds fields other than role, content and {extra}")
    content = message.get("content")
    if not isinstance(content, str) and not (content is None and message.get("tool_calls")):
        raise _invalid(f"messages[{i}].content must be a string")
    if extra in message:
        valid = isinstance(message[extra], list) if extra == "tool_calls" else isinstance(message[extra], str)
        if not valid:
            raise _invalid(f"messages[{i}].{extra} is malformed")
        return {"role": message["role"], "content": content, extra: message[extra]}
    if message["role"] == "tool":
        raise _invalid(f"messages[{i}].tool_call_id is required")
    return {"role": message["role"], "content": content}


def _model(value: Any, settings: Settings) -> str:
    if value is None:
        return settings.default_model
    if not isinstance(value, str) or not value.strip() or len(value) > 200:
        raise _invalid("model must be a non-empty string")
    allowed = allowed_models(settings)
    if allowed and value not in allowed:
        raise _invalid(f"model must be one of {', '.join(sorted(allowed))}")
    return value


def allowed_models(settings: Settings) -> frozenset[str]:
    """SPOOL_MODELS plus the default model; empty when any model is allowed."""
    return frozenset([*settings.model_ids, settings.default_model]) if settings.models else frozenset()


def _temperature(value: Any) -> float | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value <= 2:
        raise _invalid("temperature must be a number from 0 to 2")
    return float(value)


def _max_tokens(value: Any, settings: Settings) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= settings.max_tokens_cap:
        raise _invalid(f"max_tokens must be an integer from 1 to {settings.max_tokens_cap}")
    return value
