"""What an append announces on its stream's activity channel.

Every script that adds events to a stream SPUBLISHes on the stream's shard
channel (spool/hub_channels.py). Most announce only the stream's events key:
"read me". An append (spool/streams/lua/append.lua) announces the events it
added too, up to MAX_CARRIED_BYTES of them, so a gateway that follows the
stream from just before them hands them to its followers without reading
the stream again (one XREAD less per write, and the first token sooner).

The payload, built in Lua and read here, is the events key, the first seq,
the count, then each event's type, data length and data, joined by `\\n`:

    spool:{id}:events\\n12\\n2\\ndelta\\n15\\n{"text":"Hello"}\\ndelta\\n...

A payload without `\\n` is a bare events key (every other script, and
workers from before this format).
"""

from __future__ import annotations

__all__ = ["MAX_CARRIED_BYTES", "Entries", "announced_key", "read_announcement"]

# Above this much event data an append announces only its key: pub/sub
# copies every payload to every subscribed gateway.
MAX_CARRIED_BYTES = 16 * 1024

# Stream entries as XREAD gives them: (entry id b"0-<seq>", {b"t": type, b"d": data}).
Entries = list[tuple[bytes, dict[bytes, bytes]]]


def announced_key(data: bytes) -> bytes:
    """The events key an announcement names, readable or not: its first line."""
    return data.split(b"\n", 1)[0]


def read_announcement(data: bytes) -> tuple[bytes, int, Entries]:
    """The events key an announcement names, and the events it carries with
    the seq of the first (0 and [] for a bare key). Raises ValueError for a
    payload that does not parse."""
    if b"\n" not in data:
        return data, 0, []
    key, first, count, rest = data.split(b"\n", 3)
    seq = int(first)
    entries: Entries = []
    at = 0
    for _ in range(int(count)):
        type_end = rest.index(b"\n", at)
        size_end = rest.index(b"\n", type_end + 1)
        data_end = size_end + 1 + int(rest[type_end + 1:size_end])
        if data_end > len(rest):
            raise ValueError("an announcement shorter than the events it counts")
        entries.append((b"0-%d" % seq, {b"t": rest[at:type_end], b"d": rest[size_end + 1:data_end]}))
        seq += 1
        at = data_end + 1
    return key, int(first), entries
