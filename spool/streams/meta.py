"""A stream's metadata: the hash `Keys.meta(<id>)`, read as a StreamMeta.

This module (and the scripts in lua/) alone spell the hash's field names:
what creating a stream writes, what each event implies, and how the hash
reads back. Everything else asks the store for a StreamMeta, a status or an
owner.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from typing import Any

from spool.events import EventType, StreamStatus, encode_data, start_data

# The fields read one at a time (StreamStore.status, .owner).
STATUS = "status"
OWNER = "owner"


@dataclass(frozen=True)
class StreamMeta:
    """What the hash says about a stream. Times are Unix seconds; `request`
    is the stored request's JSON, still encoded (the worker decodes it)."""

    status: StreamStatus
    last_seq: int = 0
    model: str | None = None
    owner: str = ""
    request: str | None = None
    created_at: float | None = None
    started_at: float | None = None
    ended_at: float | None = None
    attempt: int = 1
    reset_reason: str | None = None
    cancel_requested: bool = False
    writer: str = ""  # the token of the writer running it ('' when none)
    leased: bool = False  # a worker holds (or held, until reclaimed) its lease
    history_lost: bool = False  # a failover lost events of a run: its rerun skipped seqs
    finish_reason: str | None = None
    usage: dict[str, Any] | None = None
    error: dict[str, Any] | None = None  # code, message, and status, param when the upstream refused

    @classmethod
    def from_hash(cls, raw: dict[Any, Any]) -> StreamMeta:
        """Read the hash as Redis returned it (bytes or str keys and values)."""
        h = {_text(k): _text(v) for k, v in raw.items()}
        error = None
        if "error_code" in h:
            error = {"code": h["error_code"], "message": h.get("error_message", "")}
            if h.get("error_status"):
                error["status"] = int(h["error_status"])
            if h.get("error_param"):
                error["param"] = h["error_param"]
        return cls(
            status=StreamStatus(h[STATUS]),
            last_seq=int(h.get("last_seq") or 0),
            model=h.get("model"),
            owner=h.get(OWNER, ""),
            request=h.get("request"),
            created_at=_float(h.get("created_at")),
            started_at=_float(h.get("started_at")),
            ended_at=_float(h.get("ended_at")),
            attempt=int(h.get("attempt") or 1),
            reset_reason=h.get("reset_reason"),
            cancel_requested=h.get("cancel_requested") == "1",
            writer=h.get("writer", ""),
            leased=bool(h.get("lease_until")),
            history_lost=h.get("history_lost") == "1",
            finish_reason=h.get("finish_reason"),
            usage=json.loads(h["usage"]) if h.get("usage") else None,
            error=error,
        )


def created_fields(stream_id: str, request: dict[str, Any], owner: str, now: float) -> dict[str, Any]:
    """The hash of a new queued stream answering `request`, owned by `owner`
    ('' when the gateway requires no API keys)."""
    return {
        **({OWNER: owner} if owner else {}),
        STATUS: StreamStatus.QUEUED.value,
        "model": request["model"],
        "created_at": repr(now),
        "last_seq": 0,
        "request": json.dumps(request, ensure_ascii=False),
        # The first event, written by the worker's lease (acquire.lua).
        "start_data": encode_data(start_data(stream_id, request["model"], now)),
    }


# The types that change the stream's metadata (the answer's parts do not).
CHANGES_META = frozenset({EventType.START, EventType.RESET, EventType.DONE, EventType.ERROR, EventType.CANCELLED})


def event_fields(type_: EventType, data: dict[str, Any]) -> list[Any]:
    """The metadata an event implies, as flat (field, value) pairs."""
    now = repr(time.time())
    if type_ is EventType.START:
        return [STATUS, StreamStatus.RUNNING.value, "started_at", now]
    if type_ is EventType.RESET:
        return [STATUS, StreamStatus.RUNNING.value, "attempt", data["attempt"]]
    if type_ is EventType.DONE:
        usage = json.dumps(data["usage"]) if data.get("usage") else ""
        return [STATUS, StreamStatus.DONE.value, "ended_at", now, "finish_reason", data["finish_reason"],
                "usage", usage]
    if type_ is EventType.ERROR:
        fields = [STATUS, StreamStatus.ERROR.value, "ended_at", now, "error_code", data["code"],
                  "error_message", data["message"]]
        # The upstream's HTTP status and the parameter it refused, when it refused the request.
        for key in ("status", "param"):
            if data.get(key) is not None:
                fields += [f"error_{key}", data[key]]
        return fields
    if type_ is EventType.CANCELLED:
        return [STATUS, StreamStatus.CANCELLED.value, "ended_at", now]
    return []


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else value


def _float(value: str | None) -> float | None:
    return float(value) if value else None
