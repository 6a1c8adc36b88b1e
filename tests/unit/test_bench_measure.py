"""The benchmark's connection count, from /proc/net/tcp-format tables."""

from __future__ import annotations

from bench.measure import established_to

HEADER = "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode"


def row(local_port: int, remote_port: int, state: str, inode: int) -> str:
    return (f"   0: 0100007F:{local_port:04X} 0100007F:{remote_port:04X} {state} 00000000:00000000 "
            f"00:00000000 00000000     0        0 {inode} 1 0000000000000000 20 4 30 10 -1")


def test_a_socket_listed_twice_counts_once():
    # The kernel lists some sockets twice when connections churn during a read.
    table = "\n".join([HEADER, row(40001, 6379, "01", 11), row(40002, 6379, "01", 12), row(40001, 6379, "01", 11)])
    assert established_to(6379, [table]) == {"11", "12"}


def test_only_established_sockets_to_the_port_count():
    table = "\n".join([
        HEADER,
        row(40001, 6379, "01", 11),
        row(40002, 6379, "06", 12),  # TIME_WAIT
        row(40003, 8000, "01", 13),  # another server
        row(6379, 40004, "01", 14),  # Redis' own end
    ])
    assert established_to(6379, [table, HEADER]) == {"11"}
