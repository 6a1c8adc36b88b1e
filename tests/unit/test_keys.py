from __future__ import annotations

from spool.keys import Keys, is_stream_id, new_stream_id


def test_stream_ids_are_unique_urlsafe_and_validated():
    ids = {new_stream_id() for _ in range(1000)}
    assert len(ids) == 1000
    assert all(is_stream_id(i) for i in ids)
    for bad in ["", "short", "A" * 23, "../../etc/passwd_____", "A" * 21 + "}", "A" * 21 + ":"]:
        assert not is_stream_id(bad)


def test_stream_ids_never_read_as_a_command_line_option():
    # One random id in 64 would start with "-"; 3,000 draws all miss it by chance once in ~10^20.
    assert not [i for i in (new_stream_id() for _ in range(3000)) if i.startswith("-")]


def test_a_streams_keys_share_one_cluster_slot():
    keys = Keys("p")
    assert keys.events("abc") == "p:{abc}:events"
    assert keys.meta("abc") == "p:{abc}:meta"
