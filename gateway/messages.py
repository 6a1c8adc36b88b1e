"""Checking the parts of a chat request that hold structure: messages, their
content parts, tools and tool_choice (docs/protocol.md, "The chat request").

spool checks what it reads or bounds (roles, the JSON type of each field,
counts, the text it counts against SPOOL_MAX_INPUT_CHARS) and forwards the
rest as sent: a tool's JSON schema or a file's bytes are the upstream's to judge.
Every refusal is a RequestError naming the parameter, e.g. `messages[2].content[0].type`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

# OpenAI's own limit on tools per request.
MAX_TOOLS = 128
# Parts of one message's content, and tool calls of one assistant message.
MAX_PARTS = 256
MAX_TOOL_NAME = 64

# The keys each role may carry. Others are "unknown" and follow the
# unknown-parameter rule (forwarded unless SPOOL_FORWARD_UNKNOWN_PARAMS=0).
MESSAGE_KEYS = {
    "system": frozenset({"role", "content", "name"}),
    "developer": frozenset({"role", "content", "name"}),
    "user": frozenset({"role", "content", "name"}),
    "assistant": frozenset({"role", "content", "name", "refusal", "tool_calls", "audio"}),
    "tool": frozenset({"role", "content", "tool_call_id"}),
}
ROLES = frozenset(MESSAGE_KEYS)
# The content part types each role may send (as OpenAI's API takes them).
PART_TYPES = {
    "system": frozenset({"text"}),
    "developer": frozenset({"text"}),
    "user": frozenset({"text", "image_url", "input_audio", "file"}),
    "assistant": frozenset({"text", "refusal"}),
    "tool": frozenset({"text"}),
}
IMAGE_URL_SCHEMES = ("https://", "http://", "data:")


class RequestError(ValueError):
    """A request parameter is malformed; `param` names it."""

    def __init__(self, message: str, param: str) -> None:
        super().__init__(message)
        self.message = message
        self.param = param


@dataclass(frozen=True)
class CheckedMessages:
    """The messages as sent, and how many characters of text they hold."""

    messages: list[dict[str, Any]]
    chars: int


def check_messages(value: Any, max_messages: int, forward_unknown: bool) -> CheckedMessages:
    """Check `messages`; returns them exactly as sent, with their text length."""
    if not isinstance(value, list) or not value:
        raise RequestError("messages must be a non-empty array", "messages")
    if len(value) > max_messages:
        raise RequestError(f"at most {max_messages} messages", "messages")
    out: list[dict[str, Any]] = []
    chars = 0
    for i, message in enumerate(value):
        where = f"messages[{i}]"
        if not isinstance(message, dict):
            raise RequestError(f"{where} must be an object", where)
        role = message.get("role")
        if not isinstance(role, str) or role not in ROLES:
            raise RequestError(f"{where}.role must be one of {', '.join(sorted(ROLES))}", f"{where}.role")
        unknown = sorted(set(message) - MESSAGE_KEYS[role])
        if unknown and not forward_unknown:
            raise RequestError(f"unknown field {unknown[0]!r} in a {role} message", f"{where}.{unknown[0]}")
        content = message.get("content")
        if content is None and role != "assistant":
            raise RequestError(f"{where}.content is required for a {role} message", f"{where}.content")
        if content is not None:
            chars += _content(content, PART_TYPES[role], f"{where}.content")
        for key in ("name", "tool_call_id", "refusal"):
            if message.get(key) is not None and not isinstance(message[key], str):
                raise RequestError(f"{where}.{key} must be a string", f"{where}.{key}")
        if role == "tool" and message.get("tool_call_id") is None:
            raise RequestError(f"{where}.tool_call_id is required for a tool message", f"{where}.tool_call_id")
        chars += len(message.get("refusal") or "")
        if message.get("tool_calls") is not None:
            chars += _tool_calls(message["tool_calls"], f"{where}.tool_calls")
        if message.get("audio") is not None and not isinstance(message["audio"], dict):
            raise RequestError(f"{where}.audio must be an object", f"{where}.audio")
        out.append(message)
    return CheckedMessages(out, chars)


def _content(content: Any, types: frozenset[str], where: str) -> int:
    """Check a message's content; returns the length of its text."""
    if isinstance(content, str):
        return len(content)
    if not isinstance(content, list) or not content:
        raise RequestError(f"{where} must be a string or a non-empty array of parts", where)
    if len(content) > MAX_PARTS:
        raise RequestError(f"{where} has more than {MAX_PARTS} parts", where)
    chars = 0
    for j, part in enumerate(content):
        at = f"{where}[{j}]"
        if not isinstance(part, dict):
            raise RequestError(f"{at} must be an object", at)
        kind = part.get("type")
        if not isinstance(kind, str) or kind not in types:
            raise RequestError(f"{at}.type must be one of {', '.join(sorted(types))} here", f"{at}.type")
        if kind in ("text", "refusal"):
            chars += len(_string(part.get(kind), f"{at}.{kind}"))
        elif kind == "image_url":
            image = _object(part.get("image_url"), f"{at}.image_url")
            url = _string(image.get("url"), f"{at}.image_url.url")
            if not url.startswith(IMAGE_URL_SCHEMES):
                raise RequestError(f"{at}.image_url.url must be an http(s) URL or a data URL", f"{at}.image_url.url")
            _optional_string(image, "detail", f"{at}.image_url")
        elif kind == "input_audio":
            audio = _object(part.get("input_audio"), f"{at}.input_audio")
            _string(audio.get("data"), f"{at}.input_audio.data")
            _string(audio.get("format"), f"{at}.input_audio.format")
        else:  # file
            file = _object(part.get("file"), f"{at}.file")
            for key in ("file_data", "file_id", "filename"):
                _optional_string(file, key, f"{at}.file")
            if "file_data" not in file and "file_id" not in file:
                raise RequestError(f"{at}.file needs file_data or file_id", f"{at}.file")
    return chars


def _tool_calls(value: Any, where: str) -> int:
    """Check an assistant message's tool_calls; returns the length of their arguments."""
    if not isinstance(value, list):
        raise RequestError(f"{where} must be an array", where)
    if len(value) > MAX_PARTS:
        raise RequestError(f"{where} has more than {MAX_PARTS} calls", where)
    chars = 0
    for k, call in enumerate(value):
        at = f"{where}[{k}]"
        call = _object(call, at)
        _string(call.get("id"), f"{at}.id")
        kind = call.get("type")
        if kind == "function":
            function = _object(call.get("function"), f"{at}.function")
            _string(function.get("name"), f"{at}.function.name")
            chars += len(_string(function.get("arguments"), f"{at}.function.arguments"))
        elif kind == "custom":
            custom = _object(call.get("custom"), f"{at}.custom")
            _string(custom.get("name"), f"{at}.custom.name")
            chars += len(_string(custom.get("input"), f"{at}.custom.input"))
        else:
            raise RequestError(f"{at}.type must be function or custom", f"{at}.type")
    return chars


def check_tools(value: Any) -> None:
    """Check `tools`: function and custom tools with a name; their schemas are the upstream's."""
    if not isinstance(value, list):
        raise RequestError("tools must be an array", "tools")
    if len(value) > MAX_TOOLS:
        raise RequestError(f"at most {MAX_TOOLS} tools", "tools")
    for i, tool in enumerate(value):
        at = f"tools[{i}]"
        tool = _object(tool, at)
        kind = tool.get("type")
        if kind not in ("function", "custom"):
            raise RequestError(f"{at}.type must be function or custom", f"{at}.type")
        spec = _object(tool.get(kind), f"{at}.{kind}")
        name = _string(spec.get("name"), f"{at}.{kind}.name")
        if not 1 <= len(name) <= MAX_TOOL_NAME:
            raise RequestError(f"{at}.{kind}.name must be 1 to {MAX_TOOL_NAME} characters", f"{at}.{kind}.name")
        _optional_string(spec, "description", f"{at}.{kind}")
        for key in ("parameters", "format"):
            if key in spec and not isinstance(spec[key], dict):
                raise RequestError(f"{at}.{kind}.{key} must be an object", f"{at}.{kind}.{key}")
        if "strict" in spec and not isinstance(spec["strict"], (bool, type(None))):
            raise RequestError(f"{at}.{kind}.strict must be a boolean", f"{at}.{kind}.strict")


def check_tool_choice(value: Any) -> None:
    """Check `tool_choice`: a mode string, or an object with a `type`."""
    if isinstance(value, str):
        return
    choice = _object(value, "tool_choice")
    kind = _string(choice.get("type"), "tool_choice.type")
    if kind in ("function", "custom"):
        _string(_object(choice.get(kind), f"tool_choice.{kind}").get("name"), f"tool_choice.{kind}.name")


def _object(value: Any, where: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise RequestError(f"{where} must be an object", where)
    return value


def _string(value: Any, where: str) -> str:
    if not isinstance(value, str):
        raise RequestError(f"{where} must be a string", where)
    return value


def _optional_string(obj: dict[str, Any], key: str, where: str) -> None:
    if obj.get(key) is not None and not isinstance(obj[key], str):
        raise RequestError(f"{where}.{key} must be a string", f"{where}.{key}")
