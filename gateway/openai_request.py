"""Reading an OpenAI chat.completions request into spool's chat request.

The OpenAI-only fields (`stream`, `stream_options`, `n`, `user`,
`max_completion_tokens`, content parts, the `developer` role) are translated
here; the rest is checked by the same rules as POST /v1/streams. Parameters
spool cannot honour (`tools`, `top_p`, ...) are refused, not silently dropped.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from gateway.errors import ApiError
from gateway.validation import allowed_models, validate_chat
from spool.settings import Settings


@dataclass(frozen=True)
class CompletionRequest:
    """A validated chat.completions request."""

    chat: dict[str, Any]
    stream: bool
    include_usage: bool


def _invalid(message: str, param: str | None) -> ApiError:
    return ApiError(400, "invalid_request", message, param=param)


def parse_completion_request(body: Any, settings: Settings) -> CompletionRequest:
    """Validate `body`; raises ApiError (400 or 404) naming the bad parameter."""
    if not isinstance(body, dict):
        raise _invalid("body must be a JSON object", "")
    body = dict(body)
    stream = body.pop("stream", False)
    if stream is None:
        stream = False
    if not isinstance(stream, bool):
        raise _invalid("stream must be a boolean", "stream")
    options = body.pop("stream_options", None) or {}
    if not isinstance(options, dict) or set(options) - {"include_usage"}:
        raise _invalid("stream_options may hold only include_usage", "stream_options")
    include_usage = options.get("include_usage", False)
    if not isinstance(include_usage, bool):
        raise _invalid("stream_options.include_usage must be a boolean", "stream_options.include_usage")
    if body.pop("n", 1) not in (1, None):
        raise _invalid("only n=1 is supported", "n")
    body.pop("user", None)
    if "max_completion_tokens" in body:
        tokens = body.pop("max_completion_tokens")
        if body.get("max_tokens") is None:
            body["max_tokens"] = tokens
    if isinstance(body.get("messages"), list):
        body["messages"] = [_message(m) for m in body["messages"]]
    unknown = sorted(set(body) - {"messages", "model", "temperature", "max_tokens"})
    if unknown:
        raise _invalid(f"unsupported parameter: {unknown[0]}", unknown[0])
    # Like the native route, only an explicit SPOOL_MODELS restricts the model;
    # OpenAI answers an unknown one with 404, not a validation error.
    allowed = allowed_models(settings)
    if allowed and isinstance(body.get("model"), str) and body["model"] not in allowed:
        raise ApiError(404, "model_not_found", f"the model {body['model']!r} does not exist", param="model")
    try:
        chat = validate_chat(body, settings)
    except ApiError as exc:
        # The parameter validate_chat names, never a word guessed from its message.
        raise _invalid(exc.message, exc.param) from None
    return CompletionRequest(chat, stream, include_usage)


def _message(message: Any) -> Any:
    """Content parts joined into one string, `developer` read as `system`."""
    if not isinstance(message, dict):
        return message
    message = {k: v for k, v in message.items() if k != "name"}
    if message.get("role") == "developer":
        message["role"] = "system"
    content = message.get("content")
    if isinstance(content, list) and all(isinstance(p, dict) and p.get("type") == "text" for p in content):
        message["content"] = "".join(str(p.get("text", "")) for p in content)
    return message
