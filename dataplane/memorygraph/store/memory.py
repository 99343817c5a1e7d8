"""In-memory engine of the storage protocol, for tests and throw-away servers.

Each column family is a dict plus a sorted key list; a batch is validated before it is applied
so it lands whole or not at all.
"""

from __future__ import annotations

import bisect
import itertools
import threading
from collections.abc import Callable, Iterator, Sequence

from memorygraph.store.keys import COLUMN_FAMILIES
from memorygraph.store.kv import Closable, Op

__all__ = ["MemoryStore"]


class MemoryStore(Closable):
    def __init__(self) -> None:
        super().__init__()
        self._data: dict[str, dict[bytes, bytes]] = {cf: {} for cf in COLUMN_FAMILIES}
        self._keys: dict[str, list[bytes]] = {cf: [] for cf in COLUMN_FAMILIES}
        self._lock = threading.Lock()

    def get(self, cf: str, key: bytes) -> bytes | None:
        self._check_open()
        return self._data[cf].get(key)

    def multi_get(self, cf: str, keys: Sequence[bytes]) -> list[bytes | None]:
        self._check_open()
        table = self._data[cf]
        return [table.get(k) for k in keys]

    def scan(
        self, cf: str, start: bytes, end: bytes, *, reverse: bool = False
    ) -> Iterator[tuple[bytes, bytes]]:
        self._check_open()
        with self._lock:
            keys = self._keys[cf]
            selected = keys[bisect.bisect_left(keys, start) : bisect.bisect_left(keys, end)]
        if reverse:
            selected.reverse()
        table = self._data[cf]
        for key in selected:
            value = table.get(key)
            if value is not None:
                yield key, value

    def scan_chunks(
        self, cf: str, start: bytes, end: bytes, *, reverse: bool = False, first: int = 8
    ) -> Iterator[list[tuple[bytes, bytes]]]:
        entries = self.scan(cf, start, end, reverse=reverse)
        size = first
        while chunk := list(itertools.islice(entries, size)):
            yield chunk
            size = 1024

    def scan_value_chunks(
        self,
        cf: str,
        start: bytes,
        end: bytes,
        *,
        resume: Callable[[bytes], bytes],
        first: int = 8,
    ) -> Iterator[list[bytes]]:
        for chunk in self.scan_chunks(cf, start, end, first=first):
            yield [value for _, value in chunk]

    def scan_keys(
        self, cf: str, start: bytes, end: bytes, *, reverse: bool = False
    ) -> Iterator[bytes]:
        for key, _ in self.scan(cf, start, end, reverse=reverse):
            yield key

    def write(self, ops: Sequence[Op], *, sync: bool) -> None:
        self._check_open()
        for cf, _, _ in ops:
            if cf not in self._data:
                raise KeyError(f"unknown column family {cf!r}")
        with self._lock:
            for cf, key, value in ops:
                table, keys = self._data[cf], self._keys[cf]
                if value is None:
                    if table.pop(key, None) is not None:
                        del keys[bisect.bisect_left(keys, key)]
                else:
                    if key not in table:
                        bisect.insort(keys, key)
                    table[key] = value

    def delete_range(self, cf: str, start: bytes, end: bytes) -> None:
        self._check_open()
        with self._lock:
            keys = self._keys[cf]
            lo, hi = bisect.bisect_left(keys, start), bisect.bisect_left(keys, end)
            table = self._data[cf]
            for key in keys[lo:hi]:
                del table[key]
            del keys[lo:hi]

    def sync_wal(self) -> None:
        self._check_open()

    def size_bytes(self) -> int:
        return sum(len(k) + len(v) for table in self._data.values() for k, v in table.items())

    def close(self) -> None:
        self._closed = True
