"""Storage: an ordered key-value protocol with RocksDB and in-memory engines, and the graph
layout built on top of it.

    kv.py           the key-value protocol (ordered scans, atomic batches)
    rocks.py        RocksDB engine (the only module importing rocksdict)
    memory.py       in-memory engine (tests, tools)
    shards.py       which shard holds a session, a node, a template name; pure
    keys.py         the byte layout of every key, pure
    records.py      value encoding of nodes, edges and events
    layout.py       the records and index entries a change implies
    counters.py     counts of what the graph holds
    eventlog.py     the event log: events of each change, reads, retention, counts
    changes.py      StoreChanges: what one commit writes
    commit.py       group commit (many writes, one sync)
    graph_store.py  GraphStore: typed reads and atomic commits over an engine
    split.py        a worker's view when the shards are spread over workers: its engine for
                    its shards, its peers for the others, the outbox of writes reaching them
    upgrade.py      converting data directories written by older versions
"""

from memorygraph.store.changes import StoreChanges
from memorygraph.store.counters import GraphCounts
from memorygraph.store.graph_store import GraphStore
from memorygraph.store.kv import KeyValueStore
from memorygraph.store.memory import MemoryStore

__all__ = [
    "GraphCounts",
    "GraphStore",
    "KeyValueStore",
    "MemoryStore",
    "StoreChanges",
    "open_rocks_store",
]


def open_rocks_store(path: str) -> KeyValueStore:
    """Open (creating if needed) the RocksDB engine at `path`.

    Imported lazily so that only this path loads rocksdict.
    """
    from memorygraph.store.rocks import RocksStore

    return RocksStore(path)
