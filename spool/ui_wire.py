"""The AI SDK's UI message stream (v1) from stored events (no I/O).

`useChat` with `DefaultChatTransport` (package `ai` 5 and later) reads
Server-Sent Events whose `data` is one UI message chunk each, ending with
`data: [DONE]`. An answer maps to (docs/protocol.md, "AI SDK"):

    start            -> start {messageId}, start-step
    delta / refusal  -> text-start, text-delta..., text-end
    reasoning        -> reasoning-start, reasoning-delta..., reasoning-end
    tool_call        -> tool-input-start {toolCallId, toolName}
    tool_call_delta  -> tool-input-delta {toolCallId, inputTextDelta}
    done             -> tool-input-available {input} per call, finish-step,
                        finish {finishReason}
    error            -> error {errorText}
    cancelled        -> abort
    logprobs         -> nothing (no chunk carries them)

It is one more `Encoder` (spool/wire.py) over the one follow loop
(spool/tail.py `follow`, gateway/streaming.py `stream_response`). Every frame
carries the event's seq as its SSE `id:`, so a client that keeps its place
can resume with Last-Event-ID: the loop hands the events up to that seq to
`observe` (`wants_history`), which rebuilds the state they leave behind
(which part is open, the tool calls and their arguments, whether text was
shown, the attempt) without sending anything, then `encode`s the rest.
Part ids are `text-<seq>` / `reasoning-<seq>` (the seq of the part's first
event): the same on every replay. A part is closed before a part of another
kind opens, so the parts appear in the order the upstream sent them.

`reset` (the answer runs again: a lost worker, a failed model): no chunk can
take text back from a message that `useChat` is building. Before anything
visible was sent, a reset passes unseen and the rerun simply follows. After,
the response ends with an `error` chunk naming the reason; a reconnect
(`GET .../stream`, which `useChat` treats as a full replay and renders in
place of the message with the same `messageId`) starts at the last reset, so
the client never shows text twice. That is `skip_to_attempt`: events before
the reset that began that attempt are not sent.

The chunk schemas are strict in `ai` 5 (no unknown keys), so chunks carry only
the keys named above.
"""

from __future__ import annotations

import json
from typing import Any

from spool.events import Event, compact_json
from spool.wire import Encoder

UI_STREAM_HEADER = ("x-vercel-ai-ui-message-stream", "v1")
# A comment: sent first so the headers leave at once, and as the heartbeat.
UI_PREAMBLE = b": spool\n\n"
UI_HEARTBEAT = b": heartbeat\n\n"
DONE_FRAME = b"data: [DONE]\n\n"
# The `error` chunk of a response cut before the terminal event (the gateway lost Redis).
INTERRUPTED = "the stream was interrupted; reconnect to resume"

# OpenAI finish reasons -> the AI SDK's.
FINISH_REASONS = {
    "stop": "stop",
    "length": "length",
    "content_filter": "content-filter",
    "tool_calls": "tool-calls",
    "function_call": "tool-calls",
}

_TEXT_HEAD = b'{"text":'


def _dumps(obj: dict[str, Any]) -> bytes:
    return compact_json(obj).encode()


def _text_of(data: bytes) -> bytes:
    """The JSON string of `{"text": ...}` as stored, without re-encoding it."""
    value = data[len(_TEXT_HEAD):-1]
    # Inside a JSON string every `"` is escaped, so `","` can only be a
    # second key: then (or for anything unexpected) decode properly.
    if data.startswith(_TEXT_HEAD) and value[:1] == b'"' and value[-1:] == b'"' and b'","' not in value:
        return value
    return compact_json(json.loads(data)["text"]).encode()


class _ToolCall:
    __slots__ = ("id", "name", "custom", "arguments")

    def __init__(self, call_id: str, name: str, custom: bool) -> None:
        self.id = call_id
        self.name = name
        self.custom = custom  # a custom tool's input is free text, not JSON
        self.arguments: list[str] = []


class UiMessageEncoder(Encoder):
    """Encodes one stream's events, in seq order, as UI message stream frames.

    Stateful (which parts are open), so one instance per response. Once
    `finished` the response is complete (its last bytes are `[DONE]`).
    `skip_to_attempt`: events of earlier attempts are not sent (a full
    replay starts at the attempt running now, module docstring). `ended`:
    the stream ended at or before the resume point, so the response is the
    preamble and `[DONE]` (the loop sends nothing else then).
    """

    name = "ui"  # the `format` label of the gateway's metrics
    mimetype = "text/event-stream"
    preamble = UI_PREAMBLE
    heartbeat = UI_HEARTBEAT
    wants_history = True

    def __init__(self, message_id: str, *, skip_to_attempt: int = 1, ended: bool = False) -> None:
        super().__init__()
        self.message_id = message_id
        if ended:
            self.preamble = UI_PREAMBLE + DONE_FRAME
        self._done_sent = ended
        self._attempt = 1
        self._skip_to = skip_to_attempt
        self._started = False
        self._visible = False  # a part was sent that a reset could not take back
        self._open: tuple[bytes, bytes] | None = None  # (kind, part id) of the open text/reasoning part
        self._calls: dict[int, _ToolCall] = {}

    def observe(self, event: Event) -> None:
        """Take in an event the client already has (seq <= its resume point)."""
        if not self.finished:
            self._chunks(event.seq, event.type, event.data)

    def encode(self, event: Event) -> bytes:
        """The frames for one stored event (often none)."""
        if self.finished:
            # Ended by the events before the resume point (a reset after
            # visible text): the client had all of it but the end.
            return self._done()
        chunks = self._chunks(event.seq, event.type, event.data)
        head = b"id: %d\ndata: " % event.seq
        out = b"".join(head + chunk + b"\n\n" for chunk in chunks)
        return out + self._done() if self.finished else out

    def interrupted(self) -> bytes:
        """Close a response cut short (no terminal event) with an `error` chunk."""
        if self.finished:
            return self._done()
        self.finished = True
        chunks = self._close_open() + [_dumps({"type": "error", "errorText": INTERRUPTED})]
        return b"".join(b"data: " + chunk + b"\n\n" for chunk in chunks) + self._done()

    def _done(self) -> bytes:
        if self._done_sent:
            return b""
        self._done_sent = True
        return DONE_FRAME

    def _chunks(self, seq: int, type_: bytes, data: bytes) -> list[bytes]:
        if type_ == b"start":
            self._started = True
            return [_dumps({"type": "start", "messageId": self.message_id}), b'{"type":"start-step"}']
        if type_ == b"reset":
            return self._reset(json.loads(data))
        if type_ in (b"done", b"error", b"cancelled"):
            self.finished = True
            return self._terminal(type_, json.loads(data))
        if self._attempt < self._skip_to:
            return []  # superseded by a later attempt (see the module docstring)
        if type_ in (b"delta", b"refusal"):
            return self._text(b"text", seq, data)
        if type_ == b"reasoning":
            return self._text(b"reasoning", seq, data)
        if type_ == b"tool_call":
            return self._tool_call(json.loads(data))
        if type_ == b"tool_call_delta":
            return self._tool_call_delta(json.loads(data))
        return []  # logprobs, and types a newer writer may add

    def _text(self, kind: bytes, seq: int, data: bytes) -> list[bytes]:
        out: list[bytes] = []
        if self._open is None or self._open[0] != kind:
            out += self._close_open()
            part_id = b"%s-%d" % (kind, seq)
            self._open = (kind, part_id)
            out.append(b'{"type":"%s-start","id":"%s"}' % (kind, part_id))
        self._visible = True
        out.append(b'{"type":"%s-delta","id":"%s","delta":%s}' % (kind, self._open[1], _text_of(data)))
        return out

    def _close_open(self) -> list[bytes]:
        if self._open is None:
            return []
        kind, part_id = self._open
        self._open = None
        return [b'{"type":"%s-end","id":"%s"}' % (kind, part_id)]

    def _tool_call(self, fields: dict[str, Any]) -> list[bytes]:
        call = _ToolCall(str(fields["id"]), str(fields["name"]), fields.get("tool_type") == "custom")
        self._calls[int(fields["index"])] = call
        self._visible = True
        return self._close_open() + [
            _dumps({"type": "tool-input-start", "toolCallId": call.id, "toolName": call.name}),
        ]

    def _tool_call_delta(self, fields: dict[str, Any]) -> list[bytes]:
        call = self._calls.get(int(fields["index"]))
        if call is None or not fields.get("arguments"):
            return []
        call.arguments.append(fields["arguments"])
        return self._close_open() + [
            _dumps({"type": "tool-input-delta", "toolCallId": call.id, "inputTextDelta": fields["arguments"]}),
        ]

    def _reset(self, fields: dict[str, Any]) -> list[bytes]:
        self._attempt = int(fields.get("attempt", self._attempt + 1))
        self._calls.clear()
        if not self._visible:
            self._open = None
            return []
        # Text already shown cannot be withdrawn in-band: end here, and let
        # the client reconnect to the rerun (module docstring).
        self.finished = True
        reason = fields.get("reason", "restarted")
        return self._close_open() + [_dumps({
            "type": "error",
            "errorText": f"the answer restarted ({reason}); reconnect to see it from the start",
        })]

    def _terminal(self, type_: bytes, fields: dict[str, Any]) -> list[bytes]:
        out = self._close_open()
        if not self._started:
            # Cancelled or failed while queued: the message still needs its start.
            out = [_dumps({"type": "start", "messageId": self.message_id})]
        if type_ == b"cancelled":
            return out + [b'{"type":"abort"}']
        if type_ == b"error":
            code, message = fields.get("code", "error"), fields.get("message", "")
            return out + [_dumps({"type": "error", "errorText": f"{code}: {message}"})]
        for index in sorted(self._calls):
            out.append(self._tool_input(self._calls[index]))
        reason = FINISH_REASONS.get(fields.get("finish_reason") or "", "other")
        return out + [b'{"type":"finish-step"}', _dumps({"type": "finish", "finishReason": reason})]

    @staticmethod
    def _tool_input(call: _ToolCall) -> bytes:
        raw = "".join(call.arguments)
        try:
            parsed = raw if call.custom else json.loads(raw) if raw else {}
        except ValueError:
            return _dumps({"type": "tool-input-error", "toolCallId": call.id, "toolName": call.name,
                           "input": raw, "errorText": "the tool call's arguments are not valid JSON"})
        return _dumps({"type": "tool-input-available", "toolCallId": call.id, "toolName": call.name,
                       "input": parsed})
