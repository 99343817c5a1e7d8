"""The storage protocol: an ordered key-value store with column families and atomic batches.

Two engines implement it (`rocks.RocksStore`, `memory.MemoryStore`) and pass one contract
suite; everything above (the graph layout in `graph.py`) is engine-agnostic.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from typing import Protocol

__all__ = ["Closable", "KeyValueStore", "Op"]

Op = tuple[str, bytes, bytes | None]
"""(column family, key, value); a None value deletes the key."""


class KeyValueStore(Protocol):
    def get(self, cf: str, key: bytes) -> bytes | None:
        """The value at `key`, or None."""
        ...

    def multi_get(self, cf: str, keys: Sequence[bytes]) -> list[bytes | None]:
        """Values for `keys`, in order, None where missing."""
        ...

    def scan(
        self, cf: str, start: bytes, end: bytes, *, reverse: bool = False
    ) -> Iterator[tuple[bytes, bytes]]:
        """Pairs with start <= key < end, ascending (or descending with `reverse`)."""
        ...

    def scan_chunks(
        self, cf: str, start: bytes, end: bytes, *, reverse: bool = False, first: int = 8
    ) -> Iterator[list[tuple[bytes, bytes]]]:
        """`scan` a list at a time (`first` pairs, then more): for callers that take many
        pairs at once and would spend more on one Python step per pair than on reading it."""
        ...

    def scan_value_chunks(
        self,
        cf: str,
        start: bytes,
        end: bytes,
        *,
        resume: Callable[[bytes], bytes],
        first: int = 8,
    ) -> Iterator[list[bytes]]:
        """`scan_chunks` ascending, values only, for values that say where they are stored:
        `resume(value)` is a key past the value's own and at or before the next one's (where
        the scan goes on after a chunk). Not building the pairs makes a scan of many entries
        cheaper per entry."""
        ...

    def scan_keys(
        self, cf: str, start: bytes, end: bytes, *, reverse: bool = False
    ) -> Iterator[bytes]:
        """`scan` without reading the values."""
        ...

    def write(self, ops: Sequence[Op], *, sync: bool) -> None:
        """Apply every op or none; with `sync` return only once the batch is on stable storage."""
        ...

    def delete_range(self, cf: str, start: bytes, end: bytes) -> None:
        """Remove every key with start <= key < end (one range tombstone, not one per key)."""
        ...

    def sync_wal(self) -> None:
        """Put every write made so far on stable storage."""
        ...

    def size_bytes(self) -> int:
        """Approximate bytes the store occupies."""
        ...

    def close(self) -> None:
        """Flush and release the store; further calls fail."""
        ...


class Closable:
    """What both engines do about `close`: once closed, every call fails with one plain error.

    Without it a closed engine fails in its own way (RocksDB with KeyError('nodes') or
    DbClosedError), which reads like a missing column family or an engine fault rather than a
    use after close."""

    def __init__(self) -> None:
        # An attribute of the instance, not a class default: it is read on every call.
        self._closed = False

    def _check_open(self) -> None:
        if self._closed:
            raise RuntimeError("store is closed")
