"""What the mock upstream answers, deterministically (no I/O).

mock_upstream/server.py serves these; tests compare against them:

- plain text: `expected_text(prompt, tokens)`, words of VOCABULARY seeded by
  the prompt (`answer_tokens`, the one vocabulary of every answer);
- tools offered (and the last message is not a `tool` result): a call of the
  tool `tool_choice` names, else the first, with arguments valid for its JSON
  schema (strings are words of the answer, multi-byte ones included), split
  into fragments across chunks; finish_reason `tool_calls`. A `custom` tool
  gets the prompt as its input. After a `tool` message it answers in text.
- model `mock-reasoning`, or `reasoning_effort` given: reasoning deltas
  (`reasoning_content`) before the answer, counted in usage's
  `completion_tokens_details.reasoning_tokens`.
- model `mock-refusal`: a refusal (`refusal` deltas, content null).
- `logprobs: true`: each content chunk carries its token's logprobs
  (`top_logprobs` alternatives when asked).

Such answers also carry `system_fingerprint` on every chunk and
`service_tier` on the usage chunk, so their passage can be checked.
"""

from __future__ import annotations

import hashlib
import json
import random
from dataclasses import dataclass, field
from typing import Any

FRAGMENT_CHARS = 7  # argument fragments: short, so a call spans many chunks
REASONING_TOKENS = 8
REFUSAL = "I can't help with that request, sorry."
SYSTEM_FINGERPRINT = "fp_spool_mock"

# Multi-byte words on purpose: clients must not split a character across chunks.
VOCABULARY = (
    "the", "stream", "resumes", "exactly", "where", "it", "stopped", "and", "nothing", "is",
    "lost", "café", "naïve", "über", "日本語", "テキスト", "🙂", "🚀", "Ωmega", "façade",
    "queue", "worker", "gateway", "redis", "token", "answer", "reconnect", "offline",
)


def answer_tokens(prompt: str, tokens: int) -> list[str]:
    """The answer's tokens: a word each, separated by spaces, seeded by the prompt."""
    rng = random.Random(hashlib.sha256(prompt.encode()).digest())
    words = [rng.choice(VOCABULARY) for _ in range(tokens)]
    return [word if i == 0 else " " + word for i, word in enumerate(words)]


def expected_text(prompt: str, tokens: int) -> str:
    """The exact text the mock answers to `prompt` with `tokens` tokens."""
    return "".join(answer_tokens(prompt, tokens))


@dataclass
class Plan:
    """One answer: the choice fragments to stream (each {"delta": ...} and
    maybe "logprobs"), its finish reason, the whole message for stream:false,
    extra usage keys and chunk-level fields."""

    fragments: list[dict[str, Any]]
    finish_reason: str
    message: dict[str, Any]
    usage_details: dict[str, Any] = field(default_factory=dict)
    chunk_fields: dict[str, Any] = field(default_factory=dict)
    service_tier: str | None = None
    # The first chunk's delta, as OpenAI sends it: content "" before text, null before a tool call or refusal.
    role_delta: dict[str, Any] = field(default_factory=lambda: {"role": "assistant", "content": ""})


def plan(body: dict[str, Any], model: str, prompt: str, tokens: list[str], finish_reason: str) -> Plan:
    """The answer to `body`: plain text `tokens` unless it asks for more."""
    messages = body.get("messages") or []
    tools = [t for t in body.get("tools") or [] if isinstance(t, dict)]
    after_tool = bool(messages) and isinstance(messages[-1], dict) and messages[-1].get("role") == "tool"
    if tools and not after_tool and body.get("tool_choice") != "none":
        result = _tool_call(_chosen(tools, body.get("tool_choice")), prompt)
    elif model == "mock-refusal":
        words = [w if i == 0 else " " + w for i, w in enumerate(REFUSAL.split(" "))]
        result = Plan([{"delta": {"refusal": w}} for w in words], "stop",
                      {"role": "assistant", "content": None, "refusal": REFUSAL},
                      role_delta={"role": "assistant", "content": None, "refusal": ""})
    else:
        logprobs = body.get("logprobs") is True
        top = body.get("top_logprobs") or 0
        fragments = [{"delta": {"content": t}, **({"logprobs": _logprobs(t, top)} if logprobs else {})}
                     for t in tokens]
        message = {"role": "assistant", "content": "".join(tokens)}
        result = Plan(fragments, finish_reason, message)
        if not logprobs and not _reasons(body, model):
            return result  # plain text, exactly as always
        if logprobs:
            result.message["logprobs"] = {"content": [f["logprobs"]["content"][0] for f in fragments], "refusal": None}
    if _reasons(body, model):
        thoughts = [w if i == 0 else " " + w for i, w in enumerate(_words("think " + prompt, REASONING_TOKENS))]
        result.fragments[:0] = [{"delta": {"reasoning_content": w}} for w in thoughts]
        result.message["reasoning_content"] = "".join(thoughts)
        result.usage_details = {"completion_tokens_details": {"reasoning_tokens": REASONING_TOKENS},
                                "prompt_tokens_details": {"cached_tokens": 0}}
    result.chunk_fields = {"system_fingerprint": SYSTEM_FINGERPRINT}
    result.service_tier = "default"
    return result


def _reasons(body: dict[str, Any], model: str) -> bool:
    return model == "mock-reasoning" or body.get("reasoning_effort") is not None


def _chosen(tools: list[dict[str, Any]], choice: Any) -> dict[str, Any]:
    if isinstance(choice, dict):
        wanted = (choice.get("function") or choice.get("custom") or {}).get("name")
        for tool in tools:
            if (tool.get("function") or tool.get("custom") or {}).get("name") == wanted:
                return tool
    return tools[0]


def call_id(prompt: str, name: str) -> str:
    """The mock's deterministic id for a call of `name` answering `prompt`."""
    return "call_" + hashlib.sha256(f"{prompt}\n{name}".encode()).hexdigest()[:24]


def tool_arguments(tool: dict[str, Any], prompt: str) -> str:
    """The arguments (or a custom tool's input) the mock calls `tool` with."""
    if tool.get("type") == "custom":
        return prompt
    schema = (tool.get("function") or {}).get("parameters") or {"type": "object", "properties": {}}
    return json.dumps(_value(schema, prompt), ensure_ascii=False)


def _tool_call(tool: dict[str, Any], prompt: str) -> Plan:
    type_ = "custom" if tool.get("type") == "custom" else "function"
    name = (tool.get(type_) or {}).get("name", "tool")
    key = "input" if type_ == "custom" else "arguments"
    arguments = tool_arguments(tool, prompt)
    pieces = [arguments[i:i + FRAGMENT_CHARS] for i in range(0, len(arguments), FRAGMENT_CHARS)]
    id_ = call_id(prompt, name)
    fragments = [{"delta": {"tool_calls": [{"index": 0, "id": id_, "type": type_, type_: {"name": name, key: ""}}]}}]
    fragments += [{"delta": {"tool_calls": [{"index": 0, type_: {key: piece}}]}} for piece in pieces]
    message = {"role": "assistant", "content": None,
               "tool_calls": [{"id": id_, "type": type_, type_: {"name": name, key: arguments}}]}
    return Plan(fragments, "tool_calls", message, role_delta={"role": "assistant", "content": None})


def _value(schema: Any, prompt: str) -> Any:
    """A value valid for the JSON schema `schema` (the common keywords)."""
    if not isinstance(schema, dict):
        return None
    if schema.get("enum"):
        return schema["enum"][0]
    if "const" in schema:
        return schema["const"]
    for key in ("anyOf", "oneOf"):
        if schema.get(key):
            return _value(schema[key][0], prompt)
    type_ = schema.get("type", "object")
    if isinstance(type_, list):
        type_ = next((t for t in type_ if t != "null"), "null")
    if type_ == "object":
        properties = schema.get("properties") or {}
        return {name: _value(sub, f"{prompt} {name}") for name, sub in properties.items()}
    if type_ == "array":
        return [_value(schema.get("items") or {"type": "string"}, prompt)] * max(1, schema.get("minItems", 1))
    if type_ == "integer":
        return max(3, schema.get("minimum", 3))
    if type_ == "number":
        return max(1.5, schema.get("minimum", 1.5))
    if type_ == "boolean":
        return True
    if type_ == "null":
        return None
    return " ".join(_words(prompt, 3))


def _words(seed: str, count: int) -> list[str]:
    return [t.strip() for t in answer_tokens(seed, count)]


def _logprobs(token: str, top: int) -> dict[str, Any]:
    entry = {"token": token, "logprob": -0.25, "bytes": list(token.encode())}
    alternatives = [{"token": token, "logprob": -0.25, "bytes": list(token.encode())}]
    alternatives += [{"token": f"alt{i}", "logprob": -2.0 - i, "bytes": list(f"alt{i}".encode())} for i in range(1, top)]
    return {"content": [{**entry, "top_logprobs": alternatives[:top]}], "refusal": None}
