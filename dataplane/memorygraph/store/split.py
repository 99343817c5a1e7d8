"""One graph over several workers: each worker owns some of the shards, in an engine of its own.

A worker's `GraphStore` runs over a `SplitKV`: keys of its own shards (and its log, counters and
markers, which are its own) are in its engine; a key of a shard another worker owns is read from
that worker (`Peer`). A write whose keys fall on other workers' shards is split: the part of each
other worker goes into this worker's batch as an outbox entry, the batch is synced, and then
each part is delivered to its worker, which applies it in one batch of its own (with the events
of its shards, numbered in its log) and records the highest entry of this worker it applied.
Entries go to each worker in order and are delivered again until they are applied: a crash of
either side between the two batches ends, on the next delivery, with the part applied once.

While a write is being made (`writing`), the first key it touches on another worker takes that
worker's writers' lock, held until the write is delivered: what the write read there cannot
change before it lands. A lock not granted in time fails the write (`Busy`); two writes each
holding their own worker's lock and waiting for the other's end that way.
"""

from __future__ import annotations

import contextlib
import logging
import struct
import threading
import time
from collections.abc import Callable, Collection, Iterator, Mapping, Sequence
from typing import Protocol

from memorygraph.errors import Unavailable
from memorygraph.model import Event
from memorygraph.store import keys
from memorygraph.store.kv import KeyValueStore, Op
from memorygraph.store.records import decode_event, encode_event

__all__ = [
    "SCAN_BYTES",
    "Busy",
    "Outbox",
    "Peer",
    "SplitKV",
    "WorkerMap",
    "decode_part",
    "encode_part",
    "remote_chunks",
]

log = logging.getLogger("memorygraph.store")

OUTBOX_PREFIX = b"outbox/"
OUTBOX_NEXT_KEY = b"outbox-next"
APPLIED_PREFIX = b"applied/"
_SCAN_CHUNK = 512  # pairs a remote scan fetches at a time
# What one remote range read returns at most: its pairs stop once they reach this many bytes
# (one pair at least). A chunk shorter than asked and below this is the end of the range.
SCAN_BYTES = 4 << 20


def _scan_ended(chunk: Sequence[tuple[bytes, bytes]], limit: int) -> bool:
    """Whether a remote range read that returned `chunk` (asked for `limit`) reached the end
    of its range, rather than its count or byte budget."""
    return len(chunk) < limit and sum(len(k) + len(v) for k, v in chunk) < SCAN_BYTES


class Busy(Unavailable):
    """Another worker's writers could not be joined in time; nothing was written (the caller
    may try again)."""


class WorkerMap:
    """Which worker owns each shard, as seen by worker `me`."""

    __slots__ = ("_local", "me", "owners")

    def __init__(self, owners: Sequence[int], me: int) -> None:
        self.me = me
        self.owners = list(owners)
        self._local = self._prefixes_of(me)

    def _prefixes_of(self, worker: int) -> set[bytes]:
        return {s.to_bytes(keys.SHARD_LEN) for s, o in enumerate(self.owners) if o == worker}

    def reassign(self, owners: Sequence[int]) -> None:
        """Take `owners` as the map from now on (the same number of shards)."""
        if len(owners) != len(self.owners):
            raise ValueError("a map of another number of shards")
        self.owners = list(owners)
        self._local = self._prefixes_of(self.me)

    @classmethod
    def even(cls, shards: int, workers: int, me: int) -> WorkerMap:
        """Shard s on worker s mod `workers`."""
        return cls([shard % workers for shard in range(shards)], me)

    def owner(self, shard: int) -> int:
        return self.owners[shard]

    def owns(self, prefix: bytes) -> bool:
        """Whether the shard of key prefix `prefix` is this worker's."""
        return prefix in self._local

    def owns_shard(self, shard: int) -> bool:
        return self.owners[shard] == self.me

    def owned(self) -> list[int]:
        return [shard for shard, owner in enumerate(self.owners) if owner == self.me]


class Peer(Protocol):
    """Another worker, as this worker's store reaches it."""

    def get(self, cf: str, key: bytes) -> bytes | None: ...

    def multi_get(self, cf: str, keys: Sequence[bytes]) -> list[bytes | None]: ...

    def scan_chunk(
        self, cf: str, start: bytes, end: bytes, reverse: bool, limit: int, values: bool
    ) -> list[tuple[bytes, bytes]]:
        """Up to `limit` pairs of `scan(cf, start, end, reverse)` (values b"" unless
        `values`)."""
        ...

    def lock(self, origin: int) -> None:
        """Take its writers' lock for a write of worker `origin` (this one); Busy if not
        granted soon, or at once when that would close a cycle of waits (see `SplitKV`)."""
        ...

    def unlock(self) -> None: ...

    def apply(self, origin: int, sequence: int, part: bytes, *, locked: bool) -> None:
        """Apply outbox entry `sequence` of worker `origin` unless it applied it before; with
        `locked`, under the writers' lock this worker holds there."""
        ...


class SplitKV:
    """A worker's view of the graph's key space: its own engine for its shards and its
    unsharded column families, its peers for the other shards. Writes go to the engine only
    (`GraphStore` splits them first, see `partition`)."""

    def __init__(self, local: KeyValueStore, workers: WorkerMap, peers: Mapping[int, Peer]):
        self.local = local
        self.workers = workers
        self.peers = dict(peers)
        self._held = threading.local()  # the peers whose lock this thread's write holds
        # The workers whose lock a write of this one is waiting for: a request for this
        # worker's lock from one of them would close a cycle, and the worker with the higher
        # number gives up at once (it gets Busy) while the other waits.
        self.waiting: set[int] = set()

    # -- where a key is ------------------------------------------------------------------------

    def _peer(self, cf: str, key: bytes) -> Peer | None:
        """None when `key` is this worker's, else the worker that has it."""
        if cf not in keys.SHARDED_FAMILIES or self.workers.owns(key[: keys.SHARD_LEN]):
            return None
        owner = self.workers.owner(int.from_bytes(key[: keys.SHARD_LEN]))
        peer = self.peers[owner]
        self._join(owner, peer)
        return peer

    def _join(self, owner: int, peer: Peer) -> None:
        held: set[int] | None = getattr(self._held, "peers", None)
        if held is not None and owner not in held:
            self.waiting.add(owner)
            try:
                peer.lock(self.workers.me)
            finally:
                self.waiting.discard(owner)
            held.add(owner)

    def join(self, owner: int) -> None:
        """Take worker `owner`'s writers' lock for the write under way (if not held yet)."""
        self._join(owner, self.peers[owner])

    @contextlib.contextmanager
    def writing(self) -> Iterator[None]:
        """The scope of one write: peers it touches are locked until it ends."""
        if getattr(self._held, "peers", None) is not None:
            yield  # nested: the outer scope holds and releases
            return
        held: set[int] = set()
        self._held.peers = held
        try:
            yield
        finally:
            self._held.peers = None
            for owner in held:
                try:
                    self.peers[owner].unlock()
                except Exception:  # its lease runs out on its own
                    log.warning("releasing worker %d's writers' lock failed", owner, exc_info=True)

    def partition(self, ops: Sequence[Op]) -> tuple[list[Op], dict[int, list[Op]]]:
        """The ops of this worker's engine, and those of each other worker."""
        local: list[Op] = []
        remote: dict[int, list[Op]] = {}
        owns, owner = self.workers.owns, self.workers.owner
        for op in ops:
            cf, key, _ = op
            if cf not in keys.SHARDED_FAMILIES or owns(key[: keys.SHARD_LEN]):
                local.append(op)
            else:
                remote.setdefault(owner(int.from_bytes(key[: keys.SHARD_LEN])), []).append(op)
        return local, remote

    # -- reads -----------------------------------------------------------------------------------

    def get(self, cf: str, key: bytes) -> bytes | None:
        peer = self._peer(cf, key)
        return self.local.get(cf, key) if peer is None else peer.get(cf, key)

    def multi_get(self, cf: str, keys_: Sequence[bytes]) -> list[bytes | None]:
        groups: dict[int, list[int]] = {}
        for i, key in enumerate(keys_):
            groups.setdefault(self._owner_of(cf, key), []).append(i)
        if len(groups) <= 1 and self.workers.me in groups:
            return self.local.multi_get(cf, keys_)
        found: list[bytes | None] = [None] * len(keys_)
        for owner, positions in groups.items():
            wanted = [keys_[i] for i in positions]
            if owner == self.workers.me:
                values = self.local.multi_get(cf, wanted)
            else:
                peer = self.peers[owner]
                self._join(owner, peer)
                values = peer.multi_get(cf, wanted)
            for i, value in zip(positions, values, strict=True):
                found[i] = value
        return found

    def _owner_of(self, cf: str, key: bytes) -> int:
        if cf not in keys.SHARDED_FAMILIES:
            return self.workers.me
        return self.workers.owner(int.from_bytes(key[: keys.SHARD_LEN]))

    def _ranges(
        self, cf: str, start: bytes, end: bytes, reverse: bool
    ) -> list[tuple[Peer | None, bytes, bytes]]:
        """[start, end) cut at shard boundaries, each piece with the worker that has it."""
        if cf not in keys.SHARDED_FAMILIES:
            return [(None, start, end)]
        first = int.from_bytes(start[: keys.SHARD_LEN].ljust(keys.SHARD_LEN, b"\x00"))
        last = min(
            int.from_bytes(end[: keys.SHARD_LEN].ljust(keys.SHARD_LEN, b"\x00")),
            len(self.workers.owners) - 1,
        )
        pieces = []
        for shard in range(first, last + 1):
            prefix = shard.to_bytes(keys.SHARD_LEN)
            lower = max(start, prefix)
            upper = min(end, keys.prefix_end(prefix))
            if lower < upper:
                pieces.append((self._peer(cf, prefix), lower, upper))
        return pieces[::-1] if reverse else pieces

    def scan(
        self, cf: str, start: bytes, end: bytes, *, reverse: bool = False
    ) -> Iterator[tuple[bytes, bytes]]:
        for chunk in self.scan_chunks(cf, start, end, reverse=reverse):
            yield from chunk

    def scan_chunks(
        self, cf: str, start: bytes, end: bytes, *, reverse: bool = False, first: int = 8
    ) -> Iterator[list[tuple[bytes, bytes]]]:
        for peer, lower, upper in self._ranges(cf, start, end, reverse):
            if peer is None:
                yield from self.local.scan_chunks(cf, lower, upper, reverse=reverse, first=first)
            else:
                yield from remote_chunks(peer, cf, lower, upper, reverse, values=True)

    def scan_value_chunks(
        self,
        cf: str,
        start: bytes,
        end: bytes,
        *,
        resume: Callable[[bytes], bytes],
        first: int = 8,
    ) -> Iterator[list[bytes]]:
        for peer, lower, upper in self._ranges(cf, start, end, False):
            if peer is None:
                yield from self.local.scan_value_chunks(
                    cf, lower, upper, resume=resume, first=first
                )
            else:
                for chunk in remote_chunks(peer, cf, lower, upper, False, values=True):
                    yield [value for _, value in chunk]

    def scan_keys(
        self, cf: str, start: bytes, end: bytes, *, reverse: bool = False
    ) -> Iterator[bytes]:
        for peer, lower, upper in self._ranges(cf, start, end, reverse):
            if peer is None:
                yield from self.local.scan_keys(cf, lower, upper, reverse=reverse)
            else:
                for chunk in remote_chunks(peer, cf, lower, upper, reverse, values=False):
                    yield from (key for key, _ in chunk)

    # -- the engine's own ------------------------------------------------------------------------

    def write(self, ops: Sequence[Op], *, sync: bool) -> None:
        self.local.write(ops, sync=sync)

    def delete_range(self, cf: str, start: bytes, end: bytes) -> None:
        self.local.delete_range(cf, start, end)

    def sync_wal(self) -> None:
        self.local.sync_wal()

    def size_bytes(self) -> int:
        return self.local.size_bytes()

    def close(self) -> None:
        self.local.close()


def remote_chunks(
    peer: Peer, cf: str, start: bytes, end: bytes, reverse: bool, *, values: bool
) -> Iterator[list[tuple[bytes, bytes]]]:
    """`scan(cf, start, end, reverse)` of another worker, a read at a time."""
    while start < end:
        chunk = peer.scan_chunk(cf, start, end, reverse, _SCAN_CHUNK, values)
        if chunk:
            yield chunk
        if not chunk or _scan_ended(chunk, _SCAN_CHUNK):
            return
        if reverse:
            end = chunk[-1][0]
        else:
            start = chunk[-1][0] + b"\x00"


# -- outbox entries --------------------------------------------------------------------------------


def encode_part(time: int, ops: Sequence[Op], events: Sequence[Event]) -> bytes:
    """A write's part for one other worker: its ops and the events of that worker's shards."""
    out = [struct.pack(">QII", time, len(ops), len(events))]
    for cf, key, value in ops:
        out.append(struct.pack(">BI", keys.COLUMN_FAMILIES.index(cf), len(key)))
        out.append(key)
        out.append(struct.pack(">i", -1 if value is None else len(value)))
        if value is not None:
            out.append(value)
    for event in events:
        record = encode_event(event)
        out.append(struct.pack(">I", len(record)))
        out.append(record)
    return b"".join(out)


def decode_part(raw: bytes) -> tuple[int, list[Op], list[Event]]:
    time, n_ops, n_events = struct.unpack_from(">QII", raw)
    at = struct.calcsize(">QII")
    ops: list[Op] = []
    for _ in range(n_ops):
        cf_index, key_len = struct.unpack_from(">BI", raw, at)
        at += 5
        key = raw[at : at + key_len]
        at += key_len
        (value_len,) = struct.unpack_from(">i", raw, at)
        at += 4
        value = None if value_len < 0 else raw[at : at + value_len]
        at += max(value_len, 0)
        ops.append((keys.COLUMN_FAMILIES[cf_index], key, value))
    events = []
    for _ in range(n_events):
        (length,) = struct.unpack_from(">I", raw, at)
        at += 4
        events.append(decode_event(0, raw[at : at + length]))
        at += length
    return time, ops, events


def outbox_key(owner: int, sequence: int) -> bytes:
    return OUTBOX_PREFIX + owner.to_bytes(2) + sequence.to_bytes(8)


def applied_key(origin: int) -> bytes:
    return APPLIED_PREFIX + origin.to_bytes(2)


class Outbox:
    """The parts of this worker's writes still to be applied by other workers (meta
    `outbox/<worker><sequence>`), delivered in order to each.

    A new store numbers its entries from the current time in microseconds, not from 1: the
    other workers skip entries numbered at or below the highest they applied from this one,
    and a store made again (a pod's lost volume replaced by an empty one) must not have its
    first entries taken for ones applied before."""

    def __init__(self, kv: SplitKV) -> None:
        self.kv = kv
        raw = kv.local.get(keys.CF_META, OUTBOX_NEXT_KEY)
        self._next = int.from_bytes(raw) if raw else time.time_ns() // 1000
        self._pending: dict[int, list[tuple[int, bytes]]] = {}
        end = keys.prefix_end(OUTBOX_PREFIX)
        for key, part in kv.local.scan(keys.CF_META, OUTBOX_PREFIX, end):
            owner = int.from_bytes(key[len(OUTBOX_PREFIX) : len(OUTBOX_PREFIX) + 2])
            sequence = int.from_bytes(key[len(OUTBOX_PREFIX) + 2 :])
            self._pending.setdefault(owner, []).append((sequence, part))
        self._sending: dict[int, threading.Lock] = {}

    def add(self, parts: Mapping[int, bytes]) -> tuple[list[Op], list[tuple[int, int, bytes]]]:
        """The ops that put `parts` (by worker) in the outbox, to go in the write's batch, and
        the entries they make, to hand to `written` once the batch is; called by one writer
        at a time."""
        ops: list[Op] = []
        entries = []
        for owner, part in sorted(parts.items()):
            sequence, self._next = self._next, self._next + 1
            ops.append((keys.CF_META, outbox_key(owner, sequence), part))
            entries.append((owner, sequence, part))
        ops.append((keys.CF_META, OUTBOX_NEXT_KEY, self._next.to_bytes(8)))
        return ops, entries

    def written(self, entries: list[tuple[int, int, bytes]]) -> None:
        """Entries of `add` whose batch is written: from now on they are delivered."""
        for owner, sequence, part in entries:
            self._pending.setdefault(owner, []).append((sequence, part))

    def _sender(self, owner: int) -> threading.Lock:
        """The lock one delivery to `owner` holds (a worker may join the graph later)."""
        return self._sending.setdefault(owner, threading.Lock())

    def pending(self, owner: int | None = None) -> int:
        """Entries still to deliver (to `owner`, or to any worker)."""
        if owner is not None:
            return len(self._pending.get(owner, ()))
        return sum(len(entries) for entries in self._pending.values())

    def deliver(self, owners: Collection[int]) -> bool:
        """Send the pending entries of `owners`, whose writers' locks the write under way
        holds, in order; True when none of theirs is left."""
        done = True
        for owner in sorted(owners):
            with self._sender(owner):
                done &= self._send(owner, locked=True)
        return done

    def retry(self) -> bool:
        """Send what earlier deliveries left (after a failure, or a restart), each worker's
        entries in order under its writers' lock; True when nothing is left. A worker busy
        with a delivery, or whose lock is not granted soon, is tried again next time."""
        done = True
        for owner in sorted(o for o, entries in self._pending.items() if entries):
            sending = self._sender(owner)
            if not sending.acquire(blocking=False):
                done = False
                continue
            try:
                peer = self.kv.peers[owner]
                try:
                    peer.lock(self.kv.workers.me)
                except Exception:
                    log.warning("worker %d is busy or down; delivering later", owner)
                    done = False
                    continue
                try:
                    done &= self._send(owner, locked=True)
                finally:
                    with contextlib.suppress(Exception):  # its lease runs out on its own
                        peer.unlock()
            finally:
                sending.release()
        return done

    def _send(self, owner: int, *, locked: bool) -> bool:
        entries = self._pending.get(owner, [])
        peer = self.kv.peers[owner]
        while entries:
            sequence, part = entries[0]
            try:
                peer.apply(self.kv.workers.me, sequence, part, locked=locked)
            except Exception:
                log.warning(
                    "worker %d did not take outbox entry %d; delivering it later",
                    owner,
                    sequence,
                    exc_info=True,
                )
                return False
            entries.pop(0)
            self.kv.local.write([(keys.CF_META, outbox_key(owner, sequence), None)], sync=False)
        return True

    def applied(self, origin: int) -> int:
        """The highest outbox entry of worker `origin` applied here."""
        raw = self.kv.local.get(keys.CF_META, applied_key(origin))
        return int.from_bytes(raw) if raw else 0
