"""Folding a stream's events into the assistant message (no I/O).

One fold serves every reader that wants the answer whole: the snapshot
(GET /v1/streams/<id>), the non-streamed chat.completion and `spool chat`.
A `reset` starts the message over, as it tells clients to (docs/protocol.md).
"""

from __future__ import annotations

from typing import Any

from spool.events import DONE_INFO_KEYS, Event


class MessageFold:
    """The assistant message assembled from events fed in seq order.

    Feed with `add(type, data)` (wire objects) or `add_stored(event)`
    (stored Events); read `text`, `message()`,
    `finish_reason`, `usage`, `logprobs`, `info` and `error`.
    """

    def __init__(self) -> None:
        self.finish_reason: str | None = None
        self.usage: dict[str, Any] | None = None
        self.info: dict[str, Any] = {}  # model, system_fingerprint, service_tier as the upstream reported
        self.error: dict[str, Any] | None = None
        self.ended: str | None = None  # the terminal event's type once it came
        self._clear()

    def _clear(self) -> None:
        self._content: list[str] = []
        self._refusal: list[str] = []
        self._reasoning: list[str] = []
        self._calls: dict[int, dict[str, Any]] = {}
        self._logprobs: dict[str, list[Any]] | None = None

    def add_stored(self, event: Event) -> None:
        """Fold a stored Event (its type and fields decoded here)."""
        self.add(event.type.decode(), event.fields)

    def add(self, type_: str, data: dict[str, Any]) -> None:
        """Fold one event given as its type name and fields."""
        if type_ == "delta":
            self._content.append(data["text"])
        elif type_ == "reasoning":
            self._reasoning.append(data["text"])
        elif type_ == "refusal":
            self._refusal.append(data["text"])
        elif type_ == "tool_call":
            self._calls[data["index"]] = {"id": data.get("id"), "type": data.get("tool_type") or "function",
                                          "name": data.get("name"), "arguments": []}
        elif type_ == "tool_call_delta":
            call = self._calls.setdefault(data["index"], {"id": None, "type": "function", "name": None,
                                                          "arguments": []})
            call["arguments"].append(data["arguments"])
        elif type_ == "logprobs":
            if self._logprobs is None:
                self._logprobs = {}
            for key, items in data.items():
                self._logprobs.setdefault(key, []).extend(items)
        elif type_ == "reset":
            self._clear()
        elif type_ == "done":
            self.ended = type_
            self.finish_reason = data.get("finish_reason")
            self.usage = data.get("usage")
            self.info = {key: data[key] for key in DONE_INFO_KEYS if data.get(key) is not None}
        elif type_ in ("error", "cancelled"):
            self.ended = type_
            self.error = dict(data) if type_ == "error" else None

    @property
    def text(self) -> str:
        """The answer's text (the `delta`s since the last reset)."""
        return "".join(self._content)

    @property
    def reasoning(self) -> str | None:
        return "".join(self._reasoning) if self._reasoning else None

    @property
    def refusal(self) -> str | None:
        return "".join(self._refusal) if self._refusal else None

    @property
    def logprobs(self) -> dict[str, list[Any]] | None:
        """The logprobs as OpenAI's choice.logprobs: {"content": [...], "refusal": [...]}."""
        if self._logprobs is None:
            return None
        return {"content": self._logprobs.get("content"), "refusal": self._logprobs.get("refusal")}

    def tool_calls(self) -> list[dict[str, Any]]:
        """The tool calls with their complete arguments, in index order, shaped as OpenAI's."""
        calls = []
        for index in sorted(self._calls):
            call = self._calls[index]
            arguments = "".join(call["arguments"])
            if call["type"] == "custom":
                calls.append({"id": call["id"], "type": "custom", "custom": {"name": call["name"], "input": arguments}})
            else:
                calls.append({"id": call["id"], "type": call["type"],
                              "function": {"name": call["name"], "arguments": arguments}})
        return calls

    def message(self, reasoning_key: str = "reasoning") -> dict[str, Any]:
        """The assistant message: role, content (null when the answer is only
        tool calls or a refusal), refusal, tool_calls (when there are any) and
        the reasoning text under `reasoning_key` (when there is any)."""
        calls = self.tool_calls()
        text = self.text
        message: dict[str, Any] = {
            "role": "assistant",
            "content": text if text or not (calls or self._refusal) else None,
            "refusal": self.refusal,
        }
        if calls:
            message["tool_calls"] = calls
        if self._reasoning:
            message[reasoning_key] = self.reasoning
        return message


def fold(events: Any) -> MessageFold:
    """Fold stored Events (in seq order) into a MessageFold."""
    folded = MessageFold()
    for event in events:
        folded.add_stored(event)
    return folded
