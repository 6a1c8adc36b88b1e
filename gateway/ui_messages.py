"""The AI SDK's UI messages (`UIMessage[]`) as chat completion messages.

A UI message is `{id, role, parts: [...]}`. Parts become:
- `text`: the message's content (a string when the message is text only);
- `file`: a content part: `image_url` for images, `input_audio` for wav/mp3
  data URLs, `file` (`file_data`, `filename`) otherwise;
- a tool part (`tool-<name>` or `dynamic-tool`) of an assistant message: an
  entry of that message's `tool_calls`, then a `tool` message with its
  output (or error text) once it has one. A call still waiting for its
  output is left out: the upstream refuses a call without a result. A call
  of a tool the request offers as `custom` is a custom call (its input is
  text), any other a function call (its input as JSON arguments);
- `reasoning`, `step-start`, sources and `data-*` parts: nothing (chat
  completions takes no reasoning as input).
An assistant message is split at each `step-start` that follows tool calls,
as the upstream sent it: one assistant message per step.
"""

from __future__ import annotations

import json
from typing import Any

from gateway.errors import ApiError

ROLES = frozenset({"system", "user", "assistant"})
_AUDIO_FORMATS = {"audio/wav": "wav", "audio/x-wav": "wav", "audio/mpeg": "mp3", "audio/mp3": "mp3"}


def _invalid(message: str) -> ApiError:
    return ApiError(400, "invalid_request", message)


def to_chat_messages(ui_messages: Any, tools: Any = None) -> list[dict[str, Any]]:
    """The chat messages for `ui_messages`; ApiError 400 for a malformed one.
    `tools`: the request's tools (only their custom tools' names are read;
    the validator checks them)."""
    custom = _custom_tool_names(tools)
    if not isinstance(ui_messages, list):
        raise _invalid("messages must be an array of UI messages")
    out: list[dict[str, Any]] = []
    for i, message in enumerate(ui_messages):
        if not isinstance(message, dict) or message.get("role") not in ROLES:
            raise _invalid(f"messages[{i}] must be an object with role system, user or assistant")
        parts = message.get("parts")
        if not isinstance(parts, list) or not all(isinstance(p, dict) and isinstance(p.get("type"), str)
                                                 for p in parts):
            raise _invalid(f"messages[{i}].parts must be an array of parts with a type")
        if message["role"] == "assistant":
            out += _assistant(parts, i, custom)
        else:
            content = _content(parts, i, files=message["role"] == "user")
            if content:
                out.append({"role": message["role"], "content": content})
    return out


def _text(part: dict[str, Any], where: str) -> str:
    text = part.get("text")
    if not isinstance(text, str):
        raise _invalid(f"{where}.text must be a string")
    return text


def _content(parts: list[dict[str, Any]], i: int, *, files: bool) -> str | list[dict[str, Any]]:
    """A string for text only, else content parts."""
    items: list[dict[str, Any]] = []
    for j, part in enumerate(parts):
        where = f"messages[{i}].parts[{j}]"
        if part["type"] == "text":
            items.append({"type": "text", "text": _text(part, where)})
        elif part["type"] == "file" and files:
            items.append(_file(part, where))
    if all(item["type"] == "text" for item in items):
        return "\n".join(item["text"] for item in items)
    return items


def _file(part: dict[str, Any], where: str) -> dict[str, Any]:
    url, media_type = part.get("url"), part.get("mediaType")
    if not isinstance(url, str) or not isinstance(media_type, str):
        raise _invalid(f"{where} (file) needs url and mediaType strings")
    if media_type.startswith("image/"):
        return {"type": "image_url", "image_url": {"url": url}}
    audio = _AUDIO_FORMATS.get(media_type)
    if audio and url.startswith("data:") and ";base64," in url:
        return {"type": "input_audio", "input_audio": {"data": url.split(";base64,", 1)[1], "format": audio}}
    file: dict[str, Any] = {"file_data": url}
    if isinstance(part.get("filename"), str):
        file["filename"] = part["filename"]
    return {"type": "file", "file": file}


def _is_tool_part(part: dict[str, Any]) -> bool:
    return part["type"].startswith("tool-") or part["type"] == "dynamic-tool"


def _custom_tool_names(tools: Any) -> frozenset[str]:
    if not isinstance(tools, list):
        return frozenset()
    return frozenset(t["custom"]["name"] for t in tools if isinstance(t, dict) and t.get("type") == "custom"
                     and isinstance(t.get("custom"), dict) and isinstance(t["custom"].get("name"), str))


def _assistant(parts: list[dict[str, Any]], i: int, custom: frozenset[str]) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    texts: list[str] = []
    calls: list[dict[str, Any]] = []
    results: list[dict[str, Any]] = []

    def flush() -> None:
        if texts or calls:
            message: dict[str, Any] = {"role": "assistant", "content": "\n".join(texts) if texts else None}
            if calls:
                message["tool_calls"] = list(calls)
            out.append(message)
            out.extend(results)
        texts.clear()
        calls.clear()
        results.clear()

    for j, part in enumerate(parts):
        where = f"messages[{i}].parts[{j}]"
        if part["type"] == "step-start" and calls:
            flush()
        elif part["type"] == "text":
            if calls:
                flush()
            texts.append(_text(part, where))
        elif _is_tool_part(part):
            call = _tool_call(part, where, custom)
            if call is not None:
                calls.append(call[0])
                results.append(call[1])
    flush()
    return out


def _tool_call(part: dict[str, Any], where: str,
               custom: frozenset[str]) -> tuple[dict[str, Any], dict[str, Any]] | None:
    """The call and its `tool` message, or None while it has no output."""
    state = part.get("state")
    if state not in ("output-available", "output-error"):
        return None
    call_id = part.get("toolCallId")
    name = part.get("toolName") if part["type"] == "dynamic-tool" else part["type"].removeprefix("tool-")
    if not isinstance(call_id, str) or not call_id or not isinstance(name, str) or not name:
        raise _invalid(f"{where} (tool) needs toolCallId and a tool name")
    arguments = part.get("input")
    if not isinstance(arguments, str):
        arguments = json.dumps({} if arguments is None else arguments)
    if name in custom:
        call = {"id": call_id, "type": "custom", "custom": {"name": name, "input": arguments}}
    else:
        call = {"id": call_id, "type": "function", "function": {"name": name, "arguments": arguments}}
    if state == "output-error":
        output = str(part.get("errorText", "the tool failed"))
    else:
        output = part.get("output")
        output = output if isinstance(output, str) else json.dumps(output)
    return call, {"role": "tool", "tool_call_id": call_id, "content": output}
