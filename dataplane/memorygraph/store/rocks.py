"""RocksDB engine of the storage protocol (the only module that imports rocksdict).

One database per server process, one column family per key space (see `keys`). Every batch is
one RocksDB WriteBatch, so a crash leaves all of it or none of it.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

from rocksdict import DBCompressionType, Options, Rdict, ReadOptions, WriteBatch, WriteOptions

from memorygraph.store.keys import COLUMN_FAMILIES
from memorygraph.store.kv import Closable, Op

__all__ = ["RocksStore"]

FIRST_CHUNK = 8
# A backward scan mostly wants the newest entry or two of a range (a session's last prompt, on
# every AddPrompt): its first chunk is smaller.
FIRST_CHUNK_BACKWARD = 2
SCAN_CHUNK = 1024
# The write-ahead log is kept to about this size: past it, RocksDB flushes the column families
# that hold its oldest file and starts another. That bounds the log on disk and the time a
# restart takes to replay it, and makes the log roll over often enough for its files to be
# reused (below).
MAX_WAL_BYTES = 64 << 20
# Log files kept for reuse once their writes are flushed. A sync of a write into a reused file
# overwrites blocks the file already has, so the file system has no new blocks or size to
# record: on the benchmark machine's ext4 the sync of a 17-key write took about 90 µs in a
# reused file against 150 µs appended to a new one. The first log file after a start is new;
# the ones after it reuse these. Recovery tells a reused file's old records from new ones by
# their log number and relies on sequence numbers running on from one log file to the next:
# nothing may write past the log (no disableWAL), ingest external table files or take
# checkpoints while this is on. (RocksDB's own crash tests run with it off.)
RECYCLED_WAL_FILES = 2
# Values this large or larger (a long prompt's record, in the nodes, the session index and its
# event) are kept in blob files beside the tables, which hold a reference in their place. The
# tables' blocks then hold keys and small values only: a lookup or a scan of keys never reads
# and decompresses a neighbour's large value. (With them inline, once a store held a few
# hundred prompts of 900 KB, AddPrompt in another session took 2.0 ms p50 instead of 1.1 ms:
# finding that session's last prompt read the large block next to it every time.) Blob
# garbage (values deleted or overwritten) is collected as compactions rewrite older blob files.
MIN_BLOB_BYTES = 4096
# What RocksDB's info log (LOG in the store's directory, begun anew at every open) says each
# time it starts a write-ahead log file by reusing an old one.
_REUSED_LOG = "reusing log"


def reused_a_log_file(path: Path) -> bool:
    """Whether the store in `path` has, since it was opened, started a write-ahead log file by
    reusing an old one (see RECYCLED_WAL_FILES)."""
    log = Path(path) / "LOG"
    return log.is_file() and _REUSED_LOG in log.read_text(errors="replace")


def _options() -> Options:
    opts = Options(raw_mode=True)
    opts.create_if_missing(True)
    opts.create_missing_column_families(True)
    opts.set_compression_type(DBCompressionType.lz4())
    opts.increase_parallelism(2)
    opts.set_enable_blob_files(True)
    opts.set_min_blob_size(MIN_BLOB_BYTES)
    opts.set_blob_compression_type(DBCompressionType.lz4())
    opts.set_enable_blob_gc(True)
    return opts


def _db_options() -> Options:
    opts = _options()
    opts.set_max_total_wal_size(MAX_WAL_BYTES)
    opts.set_recycle_log_file_num(RECYCLED_WAL_FILES)
    return opts


class RocksStore(Closable):
    def __init__(self, path: str | Path) -> None:
        super().__init__()
        self.path = Path(path)
        self.path.mkdir(parents=True, exist_ok=True)
        self._db = Rdict(
            str(self.path),
            _db_options(),
            column_families={cf: _options() for cf in COLUMN_FAMILIES},
        )
        self._cfs = {cf: self._db.get_column_family(cf) for cf in COLUMN_FAMILIES}
        self._handles = {cf: self._db.get_column_family_handle(cf) for cf in COLUMN_FAMILIES}
        self._sync = WriteOptions()
        self._sync.sync = True
        self._nosync = WriteOptions()

    def get(self, cf: str, key: bytes) -> bytes | None:
        self._check_open()
        value: bytes | None = self._cfs[cf].get(key)
        return value

    def multi_get(self, cf: str, keys: Sequence[bytes]) -> list[bytes | None]:
        self._check_open()
        if not keys:
            return []
        values: list[bytes | None] = self._cfs[cf].get(list(keys))  # type: ignore[assignment]
        return values

    def scan(
        self, cf: str, start: bytes, end: bytes, *, reverse: bool = False
    ) -> Iterator[tuple[bytes, bytes]]:
        entries: Iterator[tuple[bytes, bytes]] = self._scan(cf, start, end, reverse, values=True)
        return entries

    def scan_chunks(
        self, cf: str, start: bytes, end: bytes, *, reverse: bool = False, first: int = FIRST_CHUNK
    ) -> Iterator[list[tuple[bytes, bytes]]]:
        chunks: Iterator[list[tuple[bytes, bytes]]] = self._chunks(
            cf, start, end, reverse, "items", first
        )
        return chunks

    def scan_value_chunks(
        self,
        cf: str,
        start: bytes,
        end: bytes,
        *,
        resume: Callable[[bytes], bytes],
        first: int = FIRST_CHUNK,
    ) -> Iterator[list[bytes]]:
        chunks: Iterator[list[bytes]] = self._chunks(cf, start, end, False, "values", first, resume)
        return chunks

    def scan_keys(
        self, cf: str, start: bytes, end: bytes, *, reverse: bool = False
    ) -> Iterator[bytes]:
        found: Iterator[bytes] = self._scan(cf, start, end, reverse, values=False)
        return found

    def _scan(self, cf: str, start: bytes, end: bytes, reverse: bool, *, values: bool) -> Any:
        first = FIRST_CHUNK_BACKWARD if reverse else FIRST_CHUNK
        for chunk in self._chunks(cf, start, end, reverse, "items" if values else "keys", first):
            yield from chunk

    def _chunks(
        self,
        cf: str,
        start: bytes,
        end: bytes,
        reverse: bool,
        what: str,
        first: int,
        resume: Callable[[bytes], bytes] | None = None,
    ) -> Any:
        """Lists of what rocksdict's iterator `what` ("items", "keys", "values") gives. A scan
        of values goes on from `resume(value)` after each chunk (ascending only)."""
        # Read in chunks, each with its own short-lived RocksDB iterator: an iterator pins the
        # memtables and files it started on (and keeps the database from closing), so none may
        # outlive a chunk while a slow consumer holds the generator.
        self._check_open()
        table = self._cfs[cf]
        size = first  # many scans stop after a few entries: start small, then grow
        while True:
            chunk = self._read_chunk(table, start, end, reverse, size, what)
            if chunk:
                yield chunk
            if len(chunk) < size:
                return
            size = min(size * 4, SCAN_CHUNK)
            self._check_open()  # the consumer may have closed the store between chunks
            if resume is not None:
                after = resume(chunk[-1])
                if after <= start:  # a scan that does not move on would never end
                    raise ValueError(f"a scan of {cf} cannot go on from {after!r}")
                start = after
                continue
            last = chunk[-1][0] if what == "items" else chunk[-1]
            if reverse:
                end = last
            else:
                start = last + b"\x00"

    @staticmethod
    def _read_chunk(
        table: Rdict, start: bytes, end: bytes, reverse: bool, size: int, what: str
    ) -> list[Any]:
        if reverse:
            return RocksStore._read_chunk_backward(table, start, end, size, what == "items")
        # The upper bound goes to RocksDB, so a forward entry costs one step of a native
        # iterator. (rocksdict 0.3 iterators yield nothing once a lower bound is set.)
        bounds = ReadOptions()
        bounds.set_iterate_upper_bound(end)
        # raw_mode: keys and values are bytes.
        read = getattr(table, what)
        return list(itertools.islice(read(from_key=start, read_opt=bounds), size))

    @staticmethod
    def _read_chunk_backward(
        table: Rdict, start: bytes, end: bytes, size: int, values: bool
    ) -> list[Any]:
        # A raw iterator stepped from the last key before `end`, both bounds checked here: the
        # newest entries of a range (a session's last prompt, on every AddPrompt) in a few
        # native calls, without setting up bounded read options.
        entries = table.iter()
        entries.seek_for_prev(end)
        if entries.valid() and entries.key() >= end:  # `end` itself is past the range
            entries.prev()
        chunk: list[Any] = []
        while len(chunk) < size and entries.valid():
            key = entries.key()
            if key < start:
                break
            chunk.append((key, entries.value()) if values else key)
            entries.prev()
        return chunk

    def write(self, ops: Sequence[Op], *, sync: bool) -> None:
        self._check_open()
        batch = WriteBatch(raw_mode=True)
        handles, put, delete = self._handles, batch.put, batch.delete  # a commit has dozens
        for cf, key, value in ops:
            if value is None:
                delete(key, handles[cf])
            else:
                put(key, value, handles[cf])
        self._db.write(batch, self._sync if sync else self._nosync)

    def delete_range(self, cf: str, start: bytes, end: bytes) -> None:
        self._check_open()
        batch = WriteBatch(raw_mode=True)
        batch.delete_range(start, end, self._handles[cf])
        self._db.write(batch, self._nosync)

    def sync_wal(self) -> None:
        # Syncs the write-ahead log up to every batch written so far. rocksdict releases the
        # GIL for this call (a synced marker write would hold it through the fsync, stalling
        # every other request: measured 34% of the GIL under load).
        self._check_open()
        self._db.flush_wal(True)

    def size_bytes(self) -> int:
        total = 0
        for cf in self._cfs.values():
            for prop in (
                "rocksdb.total-sst-files-size",
                "rocksdb.total-blob-file-size",
                "rocksdb.cur-size-all-mem-tables",
            ):
                total += cf.property_int_value(prop) or 0
        return total

    def close(self) -> None:
        # Column-family objects and handles keep the database (and its LOCK file) alive until
        # they are gone, so drop them before closing. Closing twice is harmless.
        if self._closed:
            return
        self._closed = True
        self._cfs.clear()
        self._handles.clear()
        self._db.close()
