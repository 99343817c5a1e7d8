"""What the other workers of a graph do to this worker's store (see `store.split`): read keys of
its shards, hold its writers' lock while a write of theirs reaches here, and apply the parts of
their writes that fall on its shards."""

from __future__ import annotations

import time
from collections.abc import Sequence

from memorygraph.errors import FailedPrecondition
from memorygraph.graph.writes import Writer
from memorygraph.store import GraphStore, KeyValueStore, keys
from memorygraph.store.split import SCAN_BYTES, Busy, SplitKV

__all__ = ["LOCK_TIMEOUT", "WorkerEndpoint"]

# How long a write waits for another worker's writers' lock before it fails (Busy): long enough
# for that worker's own writes, short enough that two writes waiting for each other's lock soon
# give up.
LOCK_TIMEOUT = 2.0
_RECHECK_SECONDS = 0.01  # how often a wait for the lock looks for a cycle of waits
_EVENT_KEYS = 200_000  # log keys one read of a shard's events looks at, at most


class WorkerEndpoint:
    """This worker, as another worker's `Peer` reaches it (in the process, or through the
    internal RPCs)."""

    def __init__(self, store: GraphStore, writer: Writer, lock_timeout: float = LOCK_TIMEOUT):
        self._store = store
        self._writer = writer
        self.lock_timeout = lock_timeout

    @property
    def _engine(self) -> KeyValueStore:
        """This worker's own engine: another worker asks only for keys of its shards."""
        kv = self._store.kv
        return kv.local if isinstance(kv, SplitKV) else kv

    def get(self, cf: str, key: bytes) -> bytes | None:
        return self._engine.get(cf, key)

    def multi_get(self, cf: str, keys: Sequence[bytes]) -> list[bytes | None]:
        return self._engine.multi_get(cf, keys)

    def scan_chunk(
        self, cf: str, start: bytes, end: bytes, reverse: bool, limit: int, values: bool
    ) -> list[tuple[bytes, bytes]]:
        """Up to `limit` pairs of the range, no more once they reach `SCAN_BYTES` (one at
        least)."""
        chunk: list[tuple[bytes, bytes]] = []
        size = 0
        if values:
            for pairs in self._engine.scan_chunks(cf, start, end, reverse=reverse, first=limit):
                for key, value in pairs:
                    chunk.append((key, value))
                    size += len(key) + len(value)
                    if len(chunk) >= limit or size >= SCAN_BYTES:
                        return chunk
            return chunk
        for key in self._engine.scan_keys(cf, start, end, reverse=reverse):
            chunk.append((key, b""))
            size += len(key)
            if len(chunk) >= limit or size >= SCAN_BYTES:
                break
        return chunk

    def shard_events(
        self, shard: int, start: bytes, end: bytes, limit: int
    ) -> tuple[list[tuple[bytes, bytes]], bytes]:
        """Up to `limit` events of `shard` with start <= key < end (within `SCAN_BYTES`),
        reading at most `_EVENT_KEYS` keys of the log; and the key to go on from (b"" once
        the range is done)."""
        found: list[tuple[bytes, bytes]] = []
        size = 0
        for read, key in enumerate(self._engine.scan_keys(keys.CF_EVENTS, start, end), 1):
            if keys.sequence_shard(int.from_bytes(key)) == shard:
                value = self._engine.get(keys.CF_EVENTS, key)
                if value is not None:
                    found.append((key, value))
                    size += len(key) + len(value)
            if len(found) >= limit or size >= SCAN_BYTES or read >= _EVENT_KEYS:
                return found, key + b"\x00"
        return found, b""

    def lock(self, origin: int) -> None:
        """Take the writers' lock for worker `origin`'s write, within `lock_timeout`; Busy at
        once (checked while waiting too) when this worker's own write is waiting for
        `origin`'s lock and `origin` has the higher number: one of two writes waiting for each
        other gives up, the other goes on."""
        deadline = time.monotonic() + self.lock_timeout
        while True:
            if self._waits_for(origin):
                raise Busy(
                    "another worker's write and this worker's were waiting for each other; "
                    "nothing was written, try again"
                )
            left = deadline - time.monotonic()
            if self._writer.join(max(0.0, min(left, _RECHECK_SECONDS))):
                return
            if left <= _RECHECK_SECONDS:
                raise Busy(
                    "another worker's write could not join this worker's writes in time; "
                    "nothing was written, try again"
                )

    def _waits_for(self, origin: int) -> bool:
        kv = self._store.kv
        return isinstance(kv, SplitKV) and origin > kv.workers.me and origin in kv.waiting

    def unlock(self) -> None:
        self._writer.leave()

    def hold(self, timeout: float) -> bool:
        """Take this worker's writers' lock for a move made here (released by `unlock`);
        False when not granted within `timeout` seconds."""
        return self._writer.join(timeout)

    def apply(self, origin: int, sequence: int, part: bytes, *, locked: bool) -> None:
        self._writer.apply_part(origin, sequence, part, locked=locked)

    def drop(self, shard: int) -> None:
        """Delete this worker's copy of `shard`, which another worker owns now."""
        kv = self._store.kv
        if not isinstance(kv, SplitKV) or kv.workers.owns_shard(shard):
            raise FailedPrecondition(
                f"shard {shard} is this worker's in the map it has: it is not dropped"
            )
        self._store.drop_shard(shard)
