"""Storage: an ordered key-value protocol with RocksDB and in-memory engines, and the graph
layout (records, indexes, counters) built on top of it."""

from memorygraph.store.counters import GraphCounts
from memorygraph.store.graph import GraphStore
from memorygraph.store.graph_changes import StoreChanges
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
