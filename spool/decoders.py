"""Incremental decoders for the two wire formats (no I/O).

Each has `feed(chunk) -> items` and `flush() -> items`, and accepts bytes split
anywhere: inside a line, inside a multi-byte UTF-8 character.
"""

from __future__ import annotations

import codecs
import json
from dataclasses import dataclass
from typing import Any


class LineDecoder:
    """Splits a byte stream into text lines at `\n`, `\r\n` or a bare `\r`
    (the WHATWG event-stream rule), without their line endings.

    A chunk ending in `\r` ends its line at once; a `\n` opening the next
    chunk is then the second half of that `\r\n`, not an empty line (httpx's
    `LineDecoder` holds the `\r` back instead; ending the line at once keeps
    an event from waiting for the next chunk)."""

    def __init__(self) -> None:
        self._utf8 = codecs.getincrementaldecoder("utf-8")()
        self._partial = ""
        self._skip_lf = False

    def feed(self, chunk: bytes) -> list[str]:
        return self._split(self._utf8.decode(chunk))

    def flush(self) -> list[str]:
        lines = self._split(self._utf8.decode(b"", final=True))
        rest, self._partial = self._partial, ""
        return [*lines, rest] if rest else lines

    def _split(self, text: str) -> list[str]:
        if not text:
            return []
        if self._skip_lf:
            self._skip_lf = False
            text = text[1:] if text[0] == "\n" else text
        if "\r" in text:  # plain `\n` streams skip this: one C-level scan
            self._skip_lf = text[-1] == "\r"
            text = text.replace("\r\n", "\n").replace("\r", "\n")
        *lines, self._partial = (self._partial + text).split("\n")
        return lines


class NDJSONDecoder:
    """Turns NDJSON bytes into JSON objects, heartbeats included."""

    def __init__(self) -> None:
        self._lines = LineDecoder()

    def feed(self, chunk: bytes) -> list[dict[str, Any]]:
        return [json.loads(line) for line in self._lines.feed(chunk) if line.strip()]

    def flush(self) -> list[dict[str, Any]]:
        return [json.loads(line) for line in self._lines.flush() if line.strip()]


@dataclass(slots=True)
class SSEMessage:
    """One dispatched server-sent event."""

    data: str
    event: str = "message"
    id: str | None = None


class SSEDecoder:
    """Turns an event stream into SSEMessages, per the WHATWG parsing rules
    (comments and `retry:` are consumed and not returned)."""

    def __init__(self) -> None:
        self._lines = LineDecoder()
        self._reset()

    def _reset(self) -> None:
        self._data: list[str] = []
        self._event = ""
        self._id: str | None = None

    def feed(self, chunk: bytes) -> list[SSEMessage]:
        return self._consume(self._lines.feed(chunk))

    def flush(self) -> list[SSEMessage]:
        # An unterminated last event is dropped, as a browser drops it.
        self._consume(self._lines.flush())
        self._reset()
        return []

    def _consume(self, lines: list[str]) -> list[SSEMessage]:
        out = []
        for line in lines:
            # `data:` lines first: nearly every line of a model's stream is one.
            if line.startswith("data:"):
                self._data.append(line[6:] if line[5:6] == " " else line[5:])
                continue
            if not line:
                if self._data:
                    data = self._data
                    out.append(SSEMessage(data[0] if len(data) == 1 else "\n".join(data), self._event or "message",
                                          self._id))
                self._reset()
                continue
            if line.startswith(":"):
                continue
            name, _, value = line.partition(":")
            value = value.removeprefix(" ")
            if name == "data":  # `data` alone, without a colon: an empty line of data
                self._data.append(value)
            elif name == "event":
                self._event = value
            elif name == "id":
                self._id = value
        return out
