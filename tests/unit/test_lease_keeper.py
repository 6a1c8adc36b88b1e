"""worker/leases.py's LeaseKeeper: a renewal that finds an answer no longer
running is a loss only if the answer is still this worker's to run."""

from __future__ import annotations

import logging

from spool.events import EventType
from tests.unit.conftest import started_stream
from worker.leases import LeaseKeeper




def test_an_answer_that_ends_during_a_renewal_is_not_lost(store, caplog):
    keeper = LeaseKeeper(store, None, 30, 3)
    sid = started_stream(store)
    lost = []
    keeper.track(sid, "w", lambda: lost.append(sid))
    renew = store.leases.renew

    def answer_ends_meanwhile(owned, seconds):
        # The generation writes its end and untracks between the keeper's
        # snapshot of what it owns and the renewal's round trip.
        store.append(sid, "w", 2, [(EventType.DONE, {"finish_reason": "stop", "usage": None})])
        keeper.untrack(sid)
        return renew(owned, seconds)

    store.leases.renew = answer_ends_meanwhile
    with caplog.at_level(logging.WARNING, logger="worker.leases"):
        keeper._renew()  # noqa: SLF001 (one upkeep tick, without its thread)
    assert lost == [] and "lease lost" not in caplog.text


def test_a_stream_taken_by_another_writer_is_lost(store, caplog):
    keeper = LeaseKeeper(store, None, 30, 3)
    sid = started_stream(store)
    lost = []
    keeper.track(sid, "w", lambda: lost.append(sid))
    store.redis.hset(store.keys.meta(sid), "writer", "another")
    with caplog.at_level(logging.WARNING, logger="worker.leases"):
        keeper._renew()  # noqa: SLF001
    assert lost == [sid] and "lease lost to another worker" in caplog.text
