"""Idempotency records (spool/idempotency.py) on fakeredis and real Redis."""

from __future__ import annotations

import threading

from spool.idempotency import IdempotencyKeys, Record, State
from spool.keys import Keys


def test_the_first_claim_wins_and_decides_for_everyone(redis_client, prefix):
    records = IdempotencyKeys(redis_client, Keys(prefix))
    name = records.name("owner\nkey")
    pending, claimed = records.claim(name, "stream-a", "fp")
    assert claimed and pending == Record(State.PENDING, "fp", "stream-a")
    found, claimed = records.claim(name, "stream-b", "fp")
    assert not claimed and found == pending
    outcome = Record(State.STREAM, "fp", "stream-a")
    decided = threading.Timer(0.05, records.decide, args=(name, pending, outcome, 60))
    decided.start()
    assert records.wait(name, timeout=10) == outcome  # a waiter sees the decision, not the claim
    decided.join()
    assert records.claim(name, "stream-c", "fp") == (outcome, False)


def test_a_decision_needs_the_claim_it_replaces(redis_client, prefix):
    records = IdempotencyKeys(redis_client, Keys(prefix))
    name = records.name("k")
    pending, _ = records.claim(name, "s1", "fp")
    stale = Record(State.PENDING, "fp", "s0")
    assert not records.decide(name, stale, Record(State.STREAM, "fp", "s0"), 60)
    refusal = {"status": 429, "code": "too_many_streams", "message": "at most 1", "retry_after": 5}
    assert records.decide(name, pending, Record(State.REFUSED, "fp", refusal=refusal), 5)
    assert records.wait(name, timeout=1).refusal == refusal


def test_a_forgotten_claim_frees_the_key_and_a_still_pending_one_is_returned(redis_client, prefix):
    records = IdempotencyKeys(redis_client, Keys(prefix))
    name = records.name("k")
    pending, _ = records.claim(name, "s1", "fp")
    assert records.wait(name, timeout=0.05) == pending
    records.forget(name, pending)
    assert records.wait(name, timeout=1) is None
    assert records.claim(name, "s2", "fp")[1]


def test_records_written_before_this_format_still_name_their_stream(redis_client, prefix):
    records = IdempotencyKeys(redis_client, Keys(prefix))
    name = records.name("k")
    redis_client.set(name, "stream-old:fp-old")
    assert records.claim(name, "s", "fp") == (Record(State.STREAM, "fp-old", "stream-old"), False)
