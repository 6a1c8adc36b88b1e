"""The one fold of events into the assistant message, and the mock's rich answers."""

from __future__ import annotations

import json

import jsonschema

from mock_upstream import answers as mock_answers
from mock_upstream import answer_tokens
from spool.message import MessageFold


def folded(*events: tuple[str, dict]) -> MessageFold:
    fold = MessageFold()
    for type_, data in events:
        fold.add(type_, data)
    return fold


def test_a_tool_call_answer_has_null_content_and_whole_arguments():
    fold = folded(
        ("start", {"id": "x", "model": "m", "created": 1}),
        ("reasoning", {"text": "hm"}),
        ("tool_call", {"index": 1, "id": "b", "tool_type": "custom", "name": "sh"}),
        ("tool_call", {"index": 0, "id": "a", "tool_type": "function", "name": "f"}),
        ("tool_call_delta", {"index": 0, "arguments": '{"x":'}),
        ("tool_call_delta", {"index": 1, "arguments": "ls"}),
        ("tool_call_delta", {"index": 0, "arguments": " 1}"}),
        ("done", {"finish_reason": "tool_calls", "usage": {"total_tokens": 3}, "model": "m-1", "service_tier": None}),
    )
    assert fold.message() == {
        "role": "assistant", "content": None, "refusal": None, "reasoning": "hm",
        "tool_calls": [
            {"id": "a", "type": "function", "function": {"name": "f", "arguments": '{"x": 1}'}},
            {"id": "b", "type": "custom", "custom": {"name": "sh", "input": "ls"}},
        ],
    }
    assert (fold.finish_reason, fold.usage, fold.info, fold.ended) == ("tool_calls", {"total_tokens": 3},
                                                                       {"model": "m-1"}, "done")


def test_a_reset_starts_the_message_over():
    fold = folded(("delta", {"text": "old"}), ("refusal", {"text": "no"}), ("logprobs", {"content": [1]}),
                  ("reset", {"attempt": 2, "reason": "worker_lost"}), ("delta", {"text": "new"}),
                  ("logprobs", {"content": [2]}), ("logprobs", {"content": [3], "refusal": [4]}))
    assert fold.message() == {"role": "assistant", "content": "new", "refusal": None}
    assert fold.text == "new" and fold.logprobs == {"content": [2, 3], "refusal": [4]}


def test_an_empty_answer_is_empty_text_and_errors_are_kept():
    fold = folded(("error", {"code": "upstream_rejected", "message": "bad", "status": 400, "param": "tools"}))
    assert fold.message()["content"] == "" and fold.ended == "error"
    assert fold.error == {"code": "upstream_rejected", "message": "bad", "status": 400, "param": "tools"}


SCHEMA = {
    "type": "object",
    "properties": {
        "city": {"type": "string"},
        "days": {"type": "integer", "minimum": 1},
        "unit": {"type": "string", "enum": ["c", "f"]},
        "tags": {"type": "array", "items": {"type": "string"}, "minItems": 2},
        "exact": {"type": ["number", "null"]},
        "nested": {"type": "object", "properties": {"on": {"type": "boolean"}}, "required": ["on"],
                   "additionalProperties": False},
    },
    "required": ["city", "days", "unit", "tags", "exact", "nested"],
    "additionalProperties": False,
}
TOOL = {"type": "function", "function": {"name": "weather", "parameters": SCHEMA}}


def test_the_mock_calls_a_tool_with_schema_valid_arguments_in_fragments():
    body = {"messages": [{"role": "user", "content": "go"}], "tools": [TOOL]}
    plan = mock_answers.plan(body, "mock", "go", answer_tokens("go", 5), "stop")
    assert plan.finish_reason == "tool_calls"
    arguments = plan.message["tool_calls"][0]["function"]["arguments"]
    jsonschema.validate(json.loads(arguments), SCHEMA)
    fragments = [f["delta"]["tool_calls"][0]["function"]["arguments"] for f in plan.fragments]
    assert "".join(fragments) == arguments and len(fragments) > 3
    # After the tool's result it answers in text.
    body["messages"] += [plan.message, {"role": "tool", "tool_call_id": "x", "content": "sunny"}]
    after = mock_answers.plan(body, "mock", "go", answer_tokens("go", 5), "stop")
    assert after.message == {"role": "assistant", "content": "".join(answer_tokens("go", 5))}


def test_plain_text_answers_are_unchanged():
    tokens = answer_tokens("x", 4)
    plan = mock_answers.plan({"messages": []}, "mock", "x", tokens, "stop")
    assert plan.fragments == [{"delta": {"content": t}} for t in tokens] and plan.chunk_fields == {}
