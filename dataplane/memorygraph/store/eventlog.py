"""The event log: every change's events, in the same batch as the change, and reading them back.

Events are derived from the change set itself (`derive_events`), inside the same batch, so no
write path can forget to record one and none can be recorded for a change that did not happen.
`EventLog` numbers them, writes them with the session-event index, and serves the log's reads:
ranges for subscribers and the registry, a session's history for exports, the retention floor
and trimming, and the count of retained events (archival erases some, restores put them back).

An event's sequence is `keys.event_sequence(tick, shard)`: the tick follows the change's time
and always moves forward, the shard is the one the event belongs to (its session's, or the
node's or the edge source's for a global node). So sequences increase in commit order, are not
consecutive, and two processes serving different shards never number two events alike.
"""

from __future__ import annotations

import logging
import threading
import uuid
from collections.abc import Callable, Collection, Iterator
from dataclasses import dataclass
from itertools import islice

from memorygraph.model import (
    Edge,
    Event,
    EventType,
    Node,
    NodeKind,
    SessionDetails,
    SessionState,
)
from memorygraph.store import keys
from memorygraph.store.changes import StoreChanges
from memorygraph.store.kv import KeyValueStore, Op
from memorygraph.store.layout import indexed_session, session_event_op
from memorygraph.store.records import decode_event, encode_event
from memorygraph.store.shards import Shards

__all__ = ["EventLog", "LogAppend", "derive_events"]

log = logging.getLogger("memorygraph.store")


# Events a trimming step removes at most (see `EventLog.trim`).
TRIM_STEP = 10_000

# `EventType.is_lifecycle`, as a set to look an event's type up in (every commit, per event).
_LIFECYCLE = frozenset(t for t in EventType if t.is_lifecycle)


def _int8(value: int) -> bytes:
    return value.to_bytes(8, signed=True)


def _read_int8(kv: KeyValueStore, key: bytes) -> int:
    raw = kv.get(keys.CF_META, key)
    return int.from_bytes(raw, signed=True) if raw else 0


def _node_event(kind: EventType, node: Node, time: int) -> Event:
    return Event(0, kind, time, node.session_id, node=node)


def derive_events(
    changes: StoreChanges, session_of: Callable[[bytes], bytes | None]
) -> Iterator[Event]:
    """Events for `changes` (sequence numbers not yet assigned), creations before deletions.

    `session_of(node_id)` names the session of an edge's source node when the change set does
    not hold that node.
    """
    time = changes.time
    known: dict[bytes, Node] = {n.id: n for n in changes.created}
    known.update({after.id: after for _, after in changes.updated})
    known.update({n.id: n for n in changes.deleted})

    def edge_event(kind: EventType, edge: Edge) -> Event:
        source = known.get(edge.source_id)
        session = source.session_id if source is not None else session_of(edge.source_id)
        return Event(0, kind, time, session, edge=edge)

    for node in changes.created:
        kind = (
            EventType.SESSION_CREATED if node.kind is NodeKind.SESSION else EventType.NODE_CREATED
        )
        yield _node_event(kind, node, node.create_time)
    for before, after in changes.updated:
        closed = (
            isinstance(after.details, SessionDetails)
            and isinstance(before.details, SessionDetails)
            and before.details.state is not SessionState.CLOSED
            and after.details.state is SessionState.CLOSED
        )
        yield _node_event(
            EventType.SESSION_CLOSED if closed else EventType.NODE_UPDATED, after, time
        )
    for edge in changes.edges_created:
        yield edge_event(EventType.EDGE_CREATED, edge)
    for edge in changes.edges_deleted:
        yield edge_event(EventType.EDGE_DELETED, edge)
    for node in sorted(changes.deleted, key=lambda n: n.kind is NodeKind.SESSION):
        kind = (
            EventType.SESSION_DELETED if node.kind is NodeKind.SESSION else EventType.NODE_DELETED
        )
        yield _node_event(kind, node, time)


@dataclass(slots=True)
class LogAppend:
    """The log's part of one commit: its writes, and the state the log is in once they are."""

    ops: list[Op]
    last_sequence: int
    count: int  # the log's count of events once written (see `EventLog.retained`)
    # Events of shards another worker owns (with their shard): that worker's log takes them.
    remote: list[tuple[int, Event]]


class EventLog:
    """The event log of one store: numbered events, the session-event index, the floor below
    which retention has trimmed, and the count of events it holds."""

    def __init__(
        self, kv: KeyValueStore, shards: Shards, owns: Callable[[int], bool] | None = None
    ) -> None:
        """`owns(shard)`, when given, says which shards' events this log takes (the others go
        to the workers that own them); every shard's otherwise."""
        self.kv = kv
        self._shards = shards
        self._owns = owns
        last = kv.get(keys.CF_META, keys.LAST_EVENT_KEY)
        self.last_sequence = int.from_bytes(last) if last else 0
        raw_id = kv.get(keys.CF_META, keys.LOG_ID_KEY)
        if raw_id is None:
            raw_id = uuid.uuid4().bytes
            kv.write([(keys.CF_META, keys.LOG_ID_KEY, raw_id)], sync=True)
        # Events restored from an archive go back only into the log they came from.
        self.log_id = str(uuid.UUID(bytes=raw_id))
        # Archival erasure and restores (commits that put events at or remove them from
        # sequences a trim may be passing) take this lock around `append` and `applied`, and
        # trimming takes it for each step; commits that only add new events never do.
        self.count_lock = threading.Lock()
        self._count = _read_int8(kv, keys.EVENT_COUNT_KEY)
        self._trimmed = _read_int8(kv, keys.EVENT_TRIMMED_KEY)

    def reload(self) -> None:
        """Read the log's state again (a shard's events were moved in or out)."""
        with self.count_lock:
            last = self.kv.get(keys.CF_META, keys.LAST_EVENT_KEY)
            self.last_sequence = int.from_bytes(last) if last else 0
            self._count = _read_int8(self.kv, keys.EVENT_COUNT_KEY)
            self._trimmed = _read_int8(self.kv, keys.EVENT_TRIMMED_KEY)

    # -- writing -----------------------------------------------------------------------------

    def append(
        self,
        changes: StoreChanges,
        edge_records: dict[int, bytes],
        session_of: Callable[[bytes], bytes | None],
        unindexed: Collection[bytes] = (),
        locate: Callable[[bytes], bytes] = lambda node_id: b"",
    ) -> LogAppend:
        """The writes that record `changes` in the log (its events numbered from the newest
        on), to go in the commit's batch; `applied` once the batch is written.

        `edge_records` maps edge objects (by id()) to the records the commit writes for them,
        which their events reuse; `session_of(node_id)` names a node's session for the events
        of edges whose source the change set does not hold. Sessions in `unindexed` (being
        deleted) have no session-event index any more: their events go in the log only.
        `locate(node_id)` is the key prefix of the shard a node lives on (see `_shard_of`)."""
        ops, gone, count, restoring = self._leaving(changes, unindexed)
        sequence = self.last_sequence
        tick, start = keys.sequence_tick(sequence), changes.time - keys.SEQUENCE_EPOCH
        events = (
            changes.events if changes.events is not None else derive_events(changes, session_of)
        )
        remote: list[tuple[int, Event]] = []
        # A commit's events mostly share a session (all of a turn's): its shard once, and
        # whether its index takes them.
        sessions: dict[bytes, tuple[int, bool]] = {}
        for event in events:
            session = event.session_id
            if session is None:
                shard, indexed = self._shard_of(event, locate), False
            elif (known_session := sessions.get(session)) is not None:
                shard, indexed = known_session
            else:
                shard = self._shards.of_id(session)
                indexed = session not in gone and session not in unindexed
                sessions[session] = shard, indexed
            if self._owns is not None and not self._owns(shard):
                remote.append((shard, event))
                continue
            tick = max(start, tick + 1)
            sequence = event.sequence = keys.event_sequence(tick, shard)
            count += 1
            known = edge_records.get(id(event.edge)) if event.edge is not None else None
            ops.append((keys.CF_EVENTS, keys.event_key(sequence), encode_event(event, known)))
            if event.type in _LIFECYCLE:
                if event.type is EventType.SESSION_RESTORED and session is not None:
                    restored = changes.time.to_bytes(8)
                    ops.append((keys.CF_META, keys.restored_key(session), restored))
            elif indexed and session is not None:
                ops.append(session_event_op(self._shards.prefix(shard), session, sequence))
        for event in restoring:
            ops.append((keys.CF_EVENTS, keys.event_key(event.sequence), encode_event(event)))
            if (session := indexed_session(event)) is not None:
                ops.append(self._index_op(session, event.sequence))
        if sequence != self.last_sequence:
            ops.append((keys.CF_META, keys.LAST_EVENT_KEY, sequence.to_bytes(8)))
        if count:
            ops.append((keys.CF_META, keys.EVENT_COUNT_KEY, _int8(self._count + count)))
        return LogAppend(ops, sequence, self._count + count, remote)

    def _shard_of(self, event: Event, locate: Callable[[bytes], bytes]) -> int:
        """The shard an event belongs to: its session's; for a global node's event, the
        node's; for an edge between global nodes, its source's."""
        if event.session_id is not None:
            return self._shards.of_id(event.session_id)
        if event.node is not None:
            return self._shards.of_node(event.node)
        if event.edge is not None:
            return int.from_bytes(locate(event.edge.source_id))
        return 0

    def _leaving(
        self, changes: StoreChanges, unindexed: Collection[bytes]
    ) -> tuple[list[Op], set[bytes], int, list[Event]]:
        """What deleted sessions take with them (their session-event index and restore time;
        with `erase_history`, their events too), the change in the count of events, and the
        restored events that still fit above the floor."""
        ops: list[Op] = []
        # A deleted session takes its session-event index and restore time with it; its events
        # stay in the log unless the change erases its history (archival).
        gone = {n.id for n in changes.deleted if n.kind is NodeKind.SESSION}
        floor, restoring = 0, changes.restored_events  # an ordinary write: neither is used
        if changes.erase_history or restoring:
            floor = self.floor()
            # Retention may have moved the floor since the restore chose its events: those now
            # below it stay out (trimmed for good).
            restoring = [e for e in restoring if e.sequence >= floor]
        count = len(restoring)  # restores put events back; erasure takes them out
        if changes.erase_history and not gone.isdisjoint(unindexed):
            # A session being deleted has no index of its history left to erase it by.
            raise ValueError("the history of a session being deleted cannot be erased")
        for session_id in gone:
            for seq in () if session_id in unindexed else self.session_sequences(session_id):
                ops.append(self._index_op(session_id, seq, present=False))
                if changes.erase_history:
                    ops.append((keys.CF_EVENTS, keys.event_key(seq), None))
                    count -= seq >= floor  # below the floor: trimmed already
            ops.append((keys.CF_META, keys.restored_key(session_id), None))
        return ops, gone, count, restoring

    def applied(self, append: LogAppend) -> None:
        """Take in an `append` whose writes are in the store (under `count_lock` when it
        erases or restores events)."""
        self.last_sequence = append.last_sequence
        self._count = append.count

    # -- reading -----------------------------------------------------------------------------

    def read(self, first: int, last: int, limit: int, max_bytes: int | None = None) -> list[Event]:
        """Up to `limit` retained events with first <= sequence <= last, in order; with
        `max_bytes`, no more once their records reach that many bytes (one at least)."""
        found = []
        size = 0
        owns = self._owns
        for key, raw in self.kv.scan(
            keys.CF_EVENTS, keys.event_key(first), keys.event_key(last + 1)
        ):
            sequence = int.from_bytes(key)
            if owns is not None and not owns(keys.sequence_shard(sequence)):
                continue  # a shard being moved here, or moved away and not dropped yet
            found.append(decode_event(sequence, raw))
            size += len(raw)
            if len(found) >= limit or (max_bytes is not None and size >= max_bytes):
                break
        return found

    def retained(self) -> int:
        """How many events the log holds."""
        return max(0, self._count - self._trimmed)

    def sequence_after(self, skipped: int) -> int:
        """The sequence of the retained event with `skipped` retained events before it
        (last_sequence + 1 when there are not that many): where a log that keeps only its
        newest events starts. Reads `skipped` keys."""
        if skipped <= 0:
            return self.oldest_sequence()
        start, end = keys.event_key(self.floor()), keys.event_key(self.last_sequence + 1)
        for key in islice(self.kv.scan_keys(keys.CF_EVENTS, start, end), skipped, None):
            return int.from_bytes(key)
        return self.last_sequence + 1

    def count_between(self, first: int, last: int, cap: int) -> int:
        """How many retained events have first <= sequence <= last, counted up to `cap`
        (sequences are not consecutive: the log is read, `cap` keys at most)."""
        start, end = keys.event_key(first), keys.event_key(last + 1)
        return sum(1 for _ in islice(self.kv.scan_keys(keys.CF_EVENTS, start, end), cap))

    def oldest_sequence(self) -> int:
        """Sequence of the oldest retained event (last_sequence + 1 when none is retained)."""
        for key, _ in self.kv.scan(keys.CF_EVENTS, keys.event_key(0), keys.event_key(2**63)):
            return int.from_bytes(key)
        return self.last_sequence + 1

    def floor(self) -> int:
        """The first sequence retention keeps; events below it were trimmed for good."""
        raw = self.kv.get(keys.CF_META, keys.EVENT_FLOOR_KEY)
        return int.from_bytes(raw) if raw else 1

    def time_at(self, sequence: int) -> int | None:
        """Time of the first retained event at or after `sequence` (sequences are not
        consecutive), or None when there is none."""
        for key, raw in self.kv.scan(
            keys.CF_EVENTS, keys.event_key(sequence), keys.event_key(self.last_sequence + 1)
        ):
            return decode_event(int.from_bytes(key), raw).time
        return None

    def trim(self, before: int) -> None:
        """Forget events with sequence < `before`, in steps of at most TRIM_STEP events (each
        step holds `count_lock`, which erasures and restores wait for, only that long).

        The floor becomes one past the newest event trimmed: sequences are not consecutive,
        and a reader that saw that event resumes from there with nothing missing. The session
        index keeps entries for trimmed events; readers skip them and archival erases them
        with the session. The floor never moves down."""
        while True:
            with self.count_lock:
                floor = self.floor()
                start, stop = keys.event_key(floor), keys.event_key(max(before, floor))
                step = list(islice(self.kv.scan_keys(keys.CF_EVENTS, start, stop), TRIM_STEP))
                if not step:
                    break
                end = int.from_bytes(step[-1]) + 1
                # Only this log's own events were counted in (not a copy of a shard on its
                # way here): only they are counted out.
                owns = self._owns
                counted = (
                    len(step)
                    if owns is None
                    else sum(1 for k in step if owns(keys.sequence_shard(int.from_bytes(k))))
                )
                trimmed = self._trimmed + counted
                self.kv.write(
                    [
                        (keys.CF_META, keys.EVENT_FLOOR_KEY, end.to_bytes(8)),
                        (keys.CF_META, keys.EVENT_TRIMMED_KEY, _int8(trimmed)),
                    ],
                    sync=False,
                )
                self._trimmed = trimmed
            # Also what a crash between an earlier step's write and its deletion left.
            self.kv.delete_range(keys.CF_EVENTS, keys.event_key(0), keys.event_key(end))
            if len(step) < TRIM_STEP:
                break

    def restorable(self, events: list[Event], log_id: str) -> list[Event]:
        """Those of `events` (from the log `log_id`) that can go back at their own sequence
        numbers: only into the log they came from, not below its retention floor, not past its
        end, and never over another event."""
        if log_id != self.log_id:
            return []
        floor, last = self.floor(), self.last_sequence
        fits = [e for e in events if floor <= e.sequence <= last]
        taken = self.kv.multi_get(keys.CF_EVENTS, [keys.event_key(e.sequence) for e in fits])
        return [e for e, raw in zip(fits, taken, strict=True) if raw is None]

    def restore_time(self, session_id: bytes) -> int:
        """When the session was last restored from an archive (0: never)."""
        raw = self.kv.get(keys.CF_META, keys.restored_key(session_id))
        return int.from_bytes(raw) if raw else 0

    def _index_start(self, session_id: bytes) -> bytes:
        """Where a session's entries in the session-event index start (on its shard)."""
        return self._shards.prefix_of(session_id) + session_id

    def _index_op(self, session_id: bytes, sequence: int, *, present: bool = True) -> Op:
        shard = self._shards.prefix_of(session_id)
        return session_event_op(shard, session_id, sequence, present=present)

    def session_sequences(self, session_id: bytes) -> list[int]:
        """Sequences the session index lists for a session (trimmed ones included)."""
        start = self._index_start(session_id)
        return [
            keys.session_event_sequence(key)
            for key in self.kv.scan_keys(keys.CF_SESSION_EVENTS, start, keys.prefix_end(start))
        ]

    def last_session_event_time(self, session_id: bytes) -> int:
        """Time of the session's newest event (0: none retained). Retention trims from the
        oldest end, so when the newest indexed event is gone, every older one is too."""
        start = self._index_start(session_id)
        end = keys.prefix_end(start)
        for key in self.kv.scan_keys(keys.CF_SESSION_EVENTS, start, end, reverse=True):
            sequence = keys.session_event_sequence(key)
            raw = self.kv.get(keys.CF_EVENTS, keys.event_key(sequence))
            return decode_event(sequence, raw).time if raw else 0
        return 0

    def session_events(self, session_id: bytes) -> list[Event]:
        """A session's retained events, in sequence order."""
        sequences = self.session_sequences(session_id)
        raws = self.kv.multi_get(keys.CF_EVENTS, [keys.event_key(s) for s in sequences])
        return [
            decode_event(seq, raw)
            for seq, raw in zip(sequences, raws, strict=True)
            if raw is not None
        ]
