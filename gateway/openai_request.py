"""Reading an OpenAI chat.completions request into spool's chat request.

The body is the one POST /v1/streams takes, plus `stream` and
`stream_options`, which are read here; everything else is checked by
gateway/validation.py and forwarded unchanged (`developer` stays `developer`,
`max_completion_tokens` stays itself). Errors name the parameter, in
OpenAI's shape, with status 400 where the native route answers 422.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from gateway.errors import ApiError
from gateway.validation import RequestError, allowed_models, validate_chat
from spool.settings import Settings


@dataclass(frozen=True)
class CompletionRequest:
    """A validated chat.completions request."""

    chat: dict[str, Any]  # the stored request (gateway/validation.py)
    stream: bool
    include_usage: bool


def _invalid(message: str, param: str | None) -> ApiError:
    return ApiError(400, "invalid_request", message, param=param)


def parse_completion_request(body: Any, settings: Settings,
                             depths: Mapping[str, int] | None = None) -> CompletionRequest:
    """Validate `body`; raises ApiError (400 or 404) naming the bad parameter.
    `depths`: how deep its members nest, as read_json_body measured them."""
    if not isinstance(body, dict):
        raise _invalid("body must be a JSON object", None)
    body = dict(body)
    stream = body.pop("stream", False)
    if stream is None:
        stream = False
    if not isinstance(stream, bool):
        raise _invalid("stream must be a boolean", "stream")
    options = body.pop("stream_options", None) or {}
    # The worker always asks the upstream for usage; other stream options
    # (how the upstream frames its stream) would not reach the client.
    if not isinstance(options, dict) or set(options) - {"include_usage"}:
        raise _invalid("stream_options may hold only include_usage", "stream_options")
    include_usage = options.get("include_usage", False)
    if not isinstance(include_usage, bool):
        raise _invalid("stream_options.include_usage must be a boolean", "stream_options.include_usage")
    # Like the native route, only an explicit SPOOL_MODELS restricts the model;
    # OpenAI answers an unknown one with 404, not a validation error.
    allowed = allowed_models(settings)
    if allowed and isinstance(body.get("model"), str) and body["model"] not in allowed:
        raise ApiError(404, "model_not_found", f"the model {body['model']!r} does not exist", param="model")
    try:
        chat = validate_chat(body, settings, depths)
    except RequestError as exc:
        raise _invalid(exc.message, param=exc.param or None) from None
    return CompletionRequest(chat, stream, include_usage)
