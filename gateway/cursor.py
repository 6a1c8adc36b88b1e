"""Where a resume starts: the rule for a client's cursor (`?after=` /
`Last-Event-ID`) against the stream's metadata, shared by every route that
resumes a stream (gateway/routes.py, gateway/ui_routes.py).

After a Redis failover the promoted replica's `last_seq` can be behind a seq
a client already read from the old master. That cursor is no client error:
the live writer re-appends the lost events with the same seqs on its next
tick (spool/journal.py), or, when the writer is gone too, the rerun's `reset`
lands past every seq a client may hold (FAILOVER_SEQ_MARGIN). So while the
stream has not ended, a cursor up to `last_seq + FAILOVER_SEQ_MARGIN` is
followed: the follow loop starts at `last_seq` (never past a stored event, or
the process's shared read of the stream would skip the restored events for
every other follower) and the events up to the cursor are read but not sent.
"""

from __future__ import annotations

from dataclasses import dataclass

from gateway.errors import ApiError
from spool.events import Event
from spool.streams import FAILOVER_SEQ_MARGIN, StreamMeta
from spool.wire import Encoder

__all__ = ["FROM_START", "ResumePoint", "resume_point"]


@dataclass(frozen=True)
class ResumePoint:
    """A resume, checked. `after` is the client's cursor; `start` where the
    follow loop reads from (`after`, or the stream's last event when the
    cursor is past it); `ended`: the stream is terminal and `after` at or past
    its end, so nothing can follow."""

    after: int
    start: int
    ended: bool

    def encoder(self, encoder: Encoder) -> Encoder:
        """`encoder`, or when the loop starts before the cursor, one that sends
        only the events past it."""
        return _PastCursor(encoder, self.after) if self.start < self.after else encoder


# A new stream's response: every event, from the first.
FROM_START = ResumePoint(0, 0, ended=False)


def resume_point(after: int, meta: StreamMeta) -> ResumePoint:
    """Check the cursor `after` against the stream's metadata. ApiError 400
    `invalid_cursor` when it is past a live stream's end by more than any
    failover can explain; an ended stream answers at once however far the
    cursor is past its end (nothing more can come)."""
    last_seq = meta.last_seq
    if meta.status.is_terminal:
        return ResumePoint(after, after, ended=after >= last_seq)
    if after > last_seq + FAILOVER_SEQ_MARGIN:
        raise ApiError(400, "invalid_cursor", "after / Last-Event-ID is beyond the stream's last event")
    return ResumePoint(after, min(after, last_seq), ended=False)


class _PastCursor(Encoder):
    """Wraps an encoder: events at or before `cursor` (the ones a failover
    lost and the writer restored, which the client has) are only observed as
    history, the rest encoded."""

    def __init__(self, inner: Encoder, cursor: int) -> None:
        super().__init__()
        self.inner = inner
        self.cursor = cursor
        self.name, self.mimetype, self.preamble = inner.name, inner.mimetype, inner.preamble
        self.heartbeat, self.wants_history = inner.heartbeat, inner.wants_history
        self.reports_queue = inner.reports_queue

    def observe(self, event: Event) -> None:
        self.inner.observe(event)

    def encode(self, event: Event) -> bytes:
        if event.seq <= self.cursor:
            self.inner.observe(event)
            return b""
        out = self.inner.encode(event)
        self.finished = self.inner.finished
        return out

    def queued(self, position: int) -> bytes:
        return self.inner.queued(position)

    def interrupted(self) -> bytes:
        return self.inner.interrupted()
