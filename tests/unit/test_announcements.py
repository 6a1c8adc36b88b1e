"""spool/announcements.py: what an append's announcement carries, as the
append script writes it and the hub reads it."""

from __future__ import annotations

import pytest

from spool.announcements import announced_key, read_announcement

KEY = b"spool:{abc}:events"


def test_a_bare_key_carries_nothing():
    assert read_announcement(KEY) == (KEY, 0, [])


def test_events_are_read_by_length_whatever_their_bytes():
    data = b'{"text":"two\\nlines"}'
    odd = b'{"text":"a\nraw newline"}'  # not JSON spool writes, but read by length all the same
    payload = b"\n".join([KEY, b"7", b"2", b"delta", b"%d" % len(data), data, b"tool_call", b"%d" % len(odd), odd])
    assert read_announcement(payload) == (KEY, 7, [(b"0-7", {b"t": b"delta", b"d": data}),
                                                   (b"0-8", {b"t": b"tool_call", b"d": odd})])


@pytest.mark.parametrize("payload", [
    KEY + b"\n7\n1\ndelta\n50\n{}",       # shorter than its length says
    KEY + b"\n7\n2\ndelta\n2\n{}",        # fewer events than its count
    KEY + b"\nseven\n1\ndelta\n2\n{}",    # not a seq
])
def test_a_payload_that_does_not_add_up_is_refused(payload):
    with pytest.raises(ValueError):
        read_announcement(payload)
    assert announced_key(payload) == KEY  # the hub reads that stream instead
