"""Moving one shard from a worker's engine to another's: copy, catch up, count in, count out.

What a worker's engine holds of shard s:

- one key range (the shard's two-byte prefix) in every sharded column family (`keys`);
- its events in the worker's log: those whose sequence names s (`keys.sequence_shard`; every
  event of a data directory of workers is numbered with its shard);
- the meta markers of its sessions: `deleting/<session>` and `restored/<session>`;
- its share of the worker's counts (nodes by kind, edges, active sessions, tokens) and of its
  log's count of events.

The steps, each one idempotent (run again after a crash at any point, it finishes the work):

1. `sync_shard(source, target, shard, shards)` makes the target's copy what the source holds:
   it writes what differs and deletes what the source no longer has, reading both in key
   order. Run while writes go on it copies everything the first time and only what changed
   since on the next (a catch-up); run once more while the shard takes no writes (fenced), it
   leaves an exact copy.
2. `adopt_shard(target, shard, epoch)` counts the copy into the target's counts and log,
   once per epoch (a marker in meta records what it counted, in the same batch), before the
   hand-over. Run again after a new copy, it counts in only the difference; `undo_count_in`
   takes it back when the hand-over does not follow.
3. The caller hands the shard over (the map changes owners at `epoch`).
4. `release_shard(source, shard, epoch)` counts the shard out of the source (once per epoch,
   with its marker), then deletes its copy.

Nothing here locks or knows of processes: a worker orders the steps (under its writers' lock
where the shard must not change) and the tests drive them directly.
"""

from __future__ import annotations

import itertools
import json
from collections.abc import Callable, Iterator

from memorygraph.store import keys
from memorygraph.store.changes import StoreChanges
from memorygraph.store.counters import Counters
from memorygraph.store.kv import KeyValueStore, Op
from memorygraph.store.records import decode_event, decode_node
from memorygraph.store.shards import Shards

__all__ = [
    "adopt_shard",
    "count_out",
    "drop_shard",
    "holds",
    "last_sequence",
    "release_shard",
    "shard_state",
    "sync_shard",
    "tail_is_new",
    "undo_count_in",
    "unreported",
]

_BATCH = 1000  # ops written at a time
_MOVE_PREFIX = b"moved/"  # meta: moved/<shard> -> b"in:<epoch> " or b"out:<epoch> " + counts
_EVENTS = "events"  # in a marker's counts: the shard's events in the log
_MARKER_PREFIXES = (keys.DELETING_PREFIX, b"restored/")
_ALL_EVENTS = (b"", b"\xff" * 9)


def _move_key(shard: int) -> bytes:
    return _MOVE_PREFIX + str(shard).encode()


def _ranges(shards: Shards, shard: int) -> list[tuple[str, bytes, bytes]]:
    """The key range of `shard` in every sharded column family."""
    prefix = shards.prefix(shard)
    return [(cf, prefix, keys.prefix_end(prefix)) for cf in keys.SHARDED_FAMILIES]


def _filtered(
    kv: KeyValueStore, cf: str, start: bytes, end: bytes, keep: Callable[[bytes], bool]
) -> Iterator[tuple[bytes, bytes]]:
    return ((key, value) for key, value in kv.scan(cf, start, end) if keep(key))


def _pieces(
    shards: Shards, shard: int
) -> list[tuple[str, bytes, bytes, Callable[[bytes], bool] | None]]:
    """Every part of the key space holding `shard`'s data: (cf, start, end, which keys)."""
    pieces: list[tuple[str, bytes, bytes, Callable[[bytes], bool] | None]] = [
        (cf, start, end, None) for cf, start, end in _ranges(shards, shard)
    ]
    pieces.append((keys.CF_EVENTS, *_ALL_EVENTS, _ShardEvents(shard)))
    for prefix in _MARKER_PREFIXES:
        pieces.append(
            (keys.CF_META, prefix, keys.prefix_end(prefix), _session_marker(prefix, shards, shard))
        )
    return pieces


def _session_marker(prefix: bytes, shards: Shards, shard: int) -> Callable[[bytes], bool]:
    """Whether a meta key `prefix` + session id is of a session on `shard`."""
    start = len(prefix)

    def keep(key: bytes) -> bool:
        return shards.of_id(key[start:]) == shard

    return keep


def _pairs(
    kv: KeyValueStore, cf: str, start: bytes, end: bytes, keep: Callable[[bytes], bool] | None
) -> Iterator[tuple[bytes, bytes]]:
    if keep is None:
        return kv.scan(cf, start, end)
    if isinstance(keep, _ShardEvents) and hasattr(kv, "shard_events"):
        # Another worker's log, filtered where it is: only the shard's events travel.
        events: Iterator[tuple[bytes, bytes]] = kv.shard_events(keep.shard, start, end)
        return events
    return _filtered(kv, cf, start, end, keep)


class _ShardEvents:
    """Whether an events key is of `shard` (its sequence names the shard)."""

    def __init__(self, shard: int) -> None:
        self.shard = shard

    def __call__(self, key: bytes) -> bool:
        return keys.sequence_shard(int.from_bytes(key)) == self.shard


def sync_shard(
    source: KeyValueStore,
    target: KeyValueStore,
    shard: int,
    shards: Shards,
    *,
    events_since: int = 0,
) -> int:
    """Make `target`'s copy of `shard` what `source` holds; returns how many keys it wrote or
    deleted.

    With `events_since`, only the events from that sequence on are compared: those before it
    were copied, and no event below it was added or removed since (`tail_is_new` says
    whether that holds)."""
    changed = 0
    ops: list[Op] = []
    for cf, start, end, keep in _pieces(shards, shard):
        if cf == keys.CF_EVENTS and events_since:
            start = max(start, keys.event_key(events_since))
        theirs = _pairs(source, cf, start, end, keep)
        mine = _pairs(target, cf, start, end, keep)
        for op in _differences(cf, theirs, mine):
            ops.append(op)
            if len(ops) >= _BATCH:
                target.write(ops, sync=False)
                changed += len(ops)
                ops = []
    if ops:
        target.write(ops, sync=False)
        changed += len(ops)
    target.sync_wal()
    return changed


def tail_is_new(source: KeyValueStore, shard: int, since: int) -> bool:
    """Whether `shard`'s events from sequence `since` on only add to what came before: none
    of them archived or restored a session (archival erases a session's older events,
    a restore puts events back at their old sequences)."""
    for key, raw in _pairs(
        source, keys.CF_EVENTS, keys.event_key(since), _ALL_EVENTS[1], _ShardEvents(shard)
    ):
        if decode_event(int.from_bytes(key), raw).type.is_lifecycle:
            return False
    return True


def last_sequence(kv: KeyValueStore) -> int:
    """The newest sequence `kv`'s log has numbered."""
    raw = kv.get(keys.CF_META, keys.LAST_EVENT_KEY)
    return int.from_bytes(raw) if raw else 0


def _differences(
    cf: str, theirs: Iterator[tuple[bytes, bytes]], mine: Iterator[tuple[bytes, bytes]]
) -> Iterator[Op]:
    """The writes that turn `mine` into `theirs` (both in key order)."""
    end = object()
    a: tuple[bytes, bytes] | object = next(theirs, end)
    b: tuple[bytes, bytes] | object = next(mine, end)
    while a is not end or b is not end:
        if b is end or (a is not end and a[0] < b[0]):  # type: ignore[index]
            yield (cf, a[0], a[1])  # type: ignore[index]
            a = next(theirs, end)
        elif a is end or b[0] < a[0]:  # type: ignore[index]
            yield (cf, b[0], None)  # type: ignore[index]
            b = next(mine, end)
        else:
            if a[1] != b[1]:  # type: ignore[index]
                yield (cf, a[0], a[1])  # type: ignore[index]
            a, b = next(theirs, end), next(mine, end)


def shard_state(kv: KeyValueStore, shard: int, shards: Shards) -> list[tuple[str, bytes, bytes]]:
    """Everything `kv` holds of `shard`, in order (for comparing two copies)."""
    return [
        (cf, key, value)
        for cf, start, end, keep in _pieces(shards, shard)
        for key, value in _pairs(kv, cf, start, end, keep)
    ]


def _floor(kv: KeyValueStore) -> int:
    raw = kv.get(keys.CF_META, keys.EVENT_FLOOR_KEY)
    return int.from_bytes(raw) if raw else 0


def _counted(kv: KeyValueStore, shard: int, shards: Shards) -> tuple[dict[str, int], int, int]:
    """What `shard` adds to a worker's counts (count deltas), how many of its events the log
    holds at or above its floor, and the newest one's sequence (0: none). Reads as it goes."""
    prefix = shards.prefix(shard)
    deltas: dict[str, int] = {}
    records = kv.scan(keys.CF_NODES, prefix, keys.prefix_end(prefix))
    while chunk := list(itertools.islice(records, _BATCH)):
        nodes = [decode_node(key[keys.SHARD_LEN :], raw) for key, raw in chunk]
        for name, delta in Counters.deltas(StoreChanges(created=nodes)).items():
            deltas[name] = deltas.get(name, 0) + delta
    edges = sum(1 for _ in kv.scan_keys(keys.CF_EDGES_OUT, prefix, keys.prefix_end(prefix)))
    for name, delta in Counters.edge_deltas(edges).items():
        deltas[name] = deltas.get(name, 0) + delta
    kept = newest = 0
    for sequence in _event_sequences(kv, shard, keys.event_key(_floor(kv)), _ALL_EVENTS[1]):
        kept, newest = kept + 1, sequence
    return deltas, kept, newest


def _event_sequences(kv: KeyValueStore, shard: int, start: bytes, end: bytes) -> Iterator[int]:
    for key in kv.scan_keys(keys.CF_EVENTS, start, end):
        sequence = int.from_bytes(key)
        if keys.sequence_shard(sequence) == shard:
            yield sequence


def unreported(kv: KeyValueStore, shard: int, reader: str = "registry") -> bool:
    """Whether `kv`'s log holds events of `shard` that its reader `reader` (the registry
    reporter) has not read yet: they would not be read at a new owner, whose reader is past
    their sequences. A log whose reader never ran has none."""
    raw = kv.get(keys.CF_META, keys.cursor_key(reader))
    if raw is None:
        return False
    cursor = keys.event_key(int.from_bytes(raw) + 1)
    return any(True for _ in _event_sequences(kv, shard, cursor, _ALL_EVENTS[1]))


def _drop_below_floor(kv: KeyValueStore, shard: int) -> None:
    """Delete the events of `shard` below the log's floor: retention has passed them here."""
    floor = keys.event_key(_floor(kv))
    ops: list[Op] = []
    for sequence in _event_sequences(kv, shard, _ALL_EVENTS[0], floor):
        ops.append((keys.CF_EVENTS, keys.event_key(sequence), None))
        if len(ops) >= _BATCH:
            kv.write(ops, sync=False)
            ops = []
    kv.write(ops, sync=False)


def _mark(kv: KeyValueStore, shard: int) -> tuple[bytes, dict[str, int]]:
    """The move marker of `shard` in `kv`: (b"in:<epoch>" or b"out:<epoch>", or b"", and what
    that step counted)."""
    raw = kv.get(keys.CF_META, _move_key(shard))
    if raw is None:
        return b"", {}
    step, _, counted = raw.partition(b" ")
    return step, json.loads(counted) if counted else {}


def undo_count_in(kv: KeyValueStore, shard: int, epoch: int) -> bool:
    """Take back what `adopt_shard` counted in for `epoch` (as its marker records it, whatever
    the copy holds now); returns whether there was anything to take back."""
    found, counted = _mark(kv, shard)
    if found != b"in:%d" % epoch:
        return False
    counted = dict(counted)
    events = counted.pop(_EVENTS, 0)
    ops = _count_ops(kv, counted, events, -1)
    ops.append(_marker_op(shard, b"out:%d" % epoch, {}))
    kv.write(ops, sync=True)
    return True


def _marker_op(shard: int, step: bytes, counted: dict[str, int]) -> Op:
    return (keys.CF_META, _move_key(shard), step + b" " + json.dumps(counted).encode())


def adopt_shard(kv: KeyValueStore, shard: int, shards: Shards, epoch: int) -> bool:
    """Count the copy of `shard` in `kv` into its counts and its log's (the newest sequence
    included, so that the log numbers its next events above the shard's). Run again for the
    same `epoch` (after a crash, and a copy made again since), it counts in only what changed
    since it last did: the marker it writes in the same batch holds what it counted. Returns
    whether the counts moved. The store over `kv` reads its counts again afterwards."""
    step = b"in:%d" % epoch
    found, before = _mark(kv, shard)
    if found != step:
        before = {}
    _drop_below_floor(kv, shard)  # gone here, as retention took this log's own
    deltas, kept, newest = _counted(kv, shard, shards)
    counted = {**deltas, _EVENTS: kept}
    change = {n: counted.get(n, 0) - before.get(n, 0) for n in counted.keys() | before.keys()}
    events = change.pop(_EVENTS, 0)
    ops = _count_ops(kv, {n: d for n, d in change.items() if d}, events, +1)
    last = kv.get(keys.CF_META, keys.LAST_EVENT_KEY)
    if newest > (int.from_bytes(last) if last else 0):
        ops.append((keys.CF_META, keys.LAST_EVENT_KEY, newest.to_bytes(8)))
    if found == step and not ops:
        return False
    ops.append(_marker_op(shard, step, counted))
    kv.write(ops, sync=True)
    return True


def release_shard(kv: KeyValueStore, shard: int, shards: Shards, epoch: int) -> None:
    """Count `shard` out of `kv` (once per `epoch`), then delete everything `kv` holds of it."""
    count_out(kv, shard, shards, epoch)
    drop_shard(kv, shard, shards)


def count_out(kv: KeyValueStore, shard: int, shards: Shards, epoch: int) -> bool:
    """Take `shard` out of `kv`'s counts and its log's, once per `epoch` (a marker of it goes
    in the same batch); returns whether it did now."""
    step = b"out:%d" % epoch
    if _mark(kv, shard)[0] == step:
        return False
    deltas, kept, _ = _counted(kv, shard, shards)
    ops = _count_ops(kv, deltas, kept, -1)
    ops.append(_marker_op(shard, step, {**deltas, _EVENTS: kept}))
    kv.write(ops, sync=True)
    return True


def drop_shard(kv: KeyValueStore, shard: int, shards: Shards) -> None:
    """Delete everything `kv` holds of `shard` (counted out, or never counted in)."""
    for cf, start, end in _ranges(shards, shard):
        kv.delete_range(cf, start, end)
    ops: list[Op] = []
    for cf, start, end, keep in _pieces(shards, shard)[len(keys.SHARDED_FAMILIES) :]:
        for key, _ in _pairs(kv, cf, start, end, keep):
            ops.append((cf, key, None))
            if len(ops) >= _BATCH:
                kv.write(ops, sync=False)
                ops = []
    kv.write(ops, sync=True)


def holds(kv: KeyValueStore, shard: int, shards: Shards) -> bool:
    """Whether `kv` holds any node of `shard` (a copy, or what a move left behind)."""
    prefix = shards.prefix(shard)
    return any(True for _ in kv.scan_keys(keys.CF_NODES, prefix, keys.prefix_end(prefix)))


def _count_ops(kv: KeyValueStore, deltas: dict[str, int], events: int, sign: int) -> list[Op]:
    """The writes moving `kv`'s counts by `deltas` and its log's count by `events`, added
    (`sign` +1) or taken away (-1)."""
    counters = Counters(kv)
    ops = counters.ops({name: sign * delta for name, delta in deltas.items()})
    if events:
        raw = kv.get(keys.CF_META, keys.EVENT_COUNT_KEY)
        count = int.from_bytes(raw, signed=True) if raw else 0
        ops.append(
            (keys.CF_META, keys.EVENT_COUNT_KEY, (count + sign * events).to_bytes(8, signed=True))
        )
    return ops
