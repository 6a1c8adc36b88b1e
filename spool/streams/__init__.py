"""Stream storage in Redis: the store, its leases, metadata and scripts.

    store.py    StreamStore: create, append (and append_many), cancel, fail,
                read, and the metadata (meta, status, owner)
    leases.py   Leases: how a worker claims, keeps and loses a stream (the
                one way a stream gets a writer)
    meta.py     StreamMeta: the metadata hash, and the one spelling of its fields
    journal.py  a writer's memory of its appends, restored after a failover
    reads.py    the TailHub's reads of followed streams (on a cluster, a
                script per slot, sent to its node)
    scripts.py  the Lua scripts of lua/, loaded once, registered once per client

Redis keys come from spool/keys.py; events are spool.events.Event.
"""

from spool.streams.journal import Journal
from spool.streams.leases import FAILOVER_SEQ_MARGIN, Lease, LeaseGrant, Leases, Reclaim
from spool.streams.meta import StreamMeta
from spool.streams.scripts import Scripts
from spool.streams.store import PAGE, AppendCode, AppendRequest, AppendResult, StreamStore

__all__ = [
    "FAILOVER_SEQ_MARGIN",
    "PAGE",
    "AppendCode",
    "AppendRequest",
    "AppendResult",
    "Journal",
    "Lease",
    "LeaseGrant",
    "Leases",
    "Reclaim",
    "Scripts",
    "StreamMeta",
    "StreamStore",
]
