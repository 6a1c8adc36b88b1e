"""`spool chat` prints every part of an answer as it streams."""

from __future__ import annotations

import io

from cli.client_commands import EventPrinter


def test_reasoning_text_and_tool_calls_are_printed_as_they_stream():
    out, err = io.StringIO(), io.StringIO()
    printer = EventPrinter(out, err)
    for event in [
        {"seq": 1, "type": "start", "id": "x", "model": "m", "created": 1},
        {"seq": 2, "type": "reasoning", "text": "hm "},
        {"seq": 3, "type": "reasoning", "text": "ok"},
        {"seq": 4, "type": "delta", "text": "Hi 🙂"},
        {"seq": 5, "type": "tool_call", "index": 0, "id": "c1", "tool_type": "function", "name": "f"},
        {"seq": 6, "type": "tool_call_delta", "index": 0, "arguments": '{"a":'},
        {"seq": 7, "type": "tool_call_delta", "index": 0, "arguments": "1}"},
        {"seq": 8, "type": "done", "finish_reason": "tool_calls", "usage": None},
    ]:
        printer.print(event)
    printer.end()
    assert out.getvalue() == 'Hi 🙂\n-> f({"a":1})\n'
    assert err.getvalue() == "\x1b[2mthinking: hm ok\x1b[0m\nspool: the model asks to call c1 f\n"


def test_a_plain_answer_prints_as_before():
    out, err = io.StringIO(), io.StringIO()
    printer = EventPrinter(out, err)
    for text in ["a", "b"]:
        printer.print({"seq": 2, "type": "delta", "text": text})
    printer.print({"seq": 4, "type": "done", "finish_reason": "stop", "usage": None})
    printer.end()
    assert (out.getvalue(), err.getvalue()) == ("ab\n", "")
