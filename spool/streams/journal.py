"""A writer's memory of what it appended, to restore it after a failover.

Redis replicates asynchronously: when a master dies, the replica promoted in
its place may lack the last events the master acknowledged, and clients may
have read them already. The live writer still holds them: when its next
append finds the stream shorter than what it wrote (the append script
answers with a gap), the store re-appends the lost tail from this journal,
with the same seqs and the same content, before the new events. A client
that read the lost events sees nothing change; one that missed them gets
them. See docs/reliability.md ("Failover").

Only this process's own appends are kept, per (stream, writer), from the
first seq it wrote; a stream's entry goes when its terminal event is
acknowledged, and the oldest entries go past MAX_STREAMS (a writer that
vanished without ending its stream).
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Sequence
from typing import Any

from spool.events import EventType

# Streams remembered at once per process: far above a worker's concurrency.
MAX_STREAMS = 4096

# An event as a writer appends it: its type and fields (its seq is implied).
Pending = tuple[EventType, dict[str, Any]]


class Journal:
    """The acknowledged events of each (stream, writer) this process wrote."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        # (stream id, writer) -> (first seq, events from that seq on)
        self._runs: OrderedDict[tuple[str, str], tuple[int, list[Pending]]] = OrderedDict()

    def record(self, stream_id: str, writer: str, first_seq: int, events: Sequence[Pending]) -> None:
        """Note that `events` were acknowledged as seqs first_seq, first_seq+1, ..."""
        if not events:
            return
        key = (stream_id, writer)
        with self._lock:
            if events[-1][0].is_terminal:  # a terminal event is always a write's last
                self._runs.pop(key, None)
                return
            start, kept = self._runs.get(key, (first_seq, []))
            if not start <= first_seq <= start + len(kept):  # a hole: keep only what is contiguous
                start, kept = first_seq, []
            if first_seq < start + len(kept):  # a retried write: replaced from its seq
                del kept[max(0, first_seq - start):]
            kept.extend(events)  # in place: an append costs its own events, not the run's
            self._runs[key] = (start, kept)
            self._runs.move_to_end(key)
            while len(self._runs) > MAX_STREAMS:
                self._runs.popitem(last=False)

    def since(self, stream_id: str, writer: str, after: int, before: int) -> list[Pending] | None:
        """The events with after < seq < before, or None when the journal
        does not hold all of them."""
        with self._lock:
            start, kept = self._runs.get((stream_id, writer), (0, []))
        if not kept or after + 1 < start or before - 1 > start + len(kept) - 1:
            return None
        return kept[after + 1 - start: before - start]

    def forget(self, stream_id: str, writer: str) -> None:
        with self._lock:
            self._runs.pop((stream_id, writer), None)
