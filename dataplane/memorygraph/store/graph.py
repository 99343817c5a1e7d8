"""The graph's storage layout on top of any `KeyValueStore`: records, indexes and counters.

`GraphStore.commit` turns a `StoreChanges` (nodes and edges created, updated, deleted) into one
atomic batch that also maintains every index and counter, so no caller can forget one. It does
not decide what a change means for the graph (cascades, automatic edges): the service layer does
that and hands over the complete change.
"""

from __future__ import annotations

import logging
import threading
import uuid
from collections.abc import Callable, Iterable, Iterator

from memorygraph.codec.framing import unframe
from memorygraph.errors import MemoryGraphError
from memorygraph.model import (
    MAX_TIME,
    Direction,
    Edge,
    EdgeKey,
    EdgeKind,
    Event,
    EventType,
    Node,
    NodeKind,
)
from memorygraph.store import keys
from memorygraph.store.commit import CommitFailed, GroupCommitter
from memorygraph.store.counters import Counters, GraphCounts
from memorygraph.store.eventlog import derive_events
from memorygraph.store.graph_changes import StoreChanges
from memorygraph.store.kv import KeyValueStore, Op
from memorygraph.store.layout import (
    indexed_session,
    node_index_ops,
    session_event_op,
    session_index_op,
)
from memorygraph.store.records import (
    decode_edge,
    decode_event,
    decode_node,
    encode_edge,
    encode_event,
    encode_node,
)
from memorygraph.store.upgrade import upgrade

__all__ = ["GraphCounts", "GraphStore", "IncompatibleSchema", "StoreChanges"]

log = logging.getLogger("memorygraph.store")


def _int8(value: int) -> bytes:
    return value.to_bytes(8, signed=True)


class IncompatibleSchema(MemoryGraphError):
    """The data directory was written by a newer, incompatible version."""


class GraphStore:
    """Typed reads and atomic change sets over a key-value engine.

    With `group_commit` (the `durable` mode), `stage` appends a change set without syncing and
    `wait_durable` blocks until a shared sync covers it; see `commit.GroupCommitter`.
    """

    def __init__(
        self,
        kv: KeyValueStore,
        *,
        group_commit: bool = False,
        on_group: Callable[[int, float], None] | None = None,
    ) -> None:
        self.kv = kv
        self._committer = (
            GroupCommitter(kv.sync_wal, on_group=on_group, on_durable=self._publish)
            if group_commit
            else None
        )
        # Called with the newest sequence number readers may see (durable in group-commit mode).
        self._listeners: list[Callable[[int], None]] = []
        last = kv.get(keys.CF_META, keys.LAST_EVENT_KEY)
        self.last_sequence = int.from_bytes(last) if last else 0
        raw = kv.get(keys.CF_META, keys.SCHEMA_VERSION_KEY)
        if raw is None:
            kv.write(
                [(keys.CF_META, keys.SCHEMA_VERSION_KEY, str(keys.SCHEMA_VERSION).encode())],
                sync=True,
            )
            self.schema_version = keys.SCHEMA_VERSION
        else:
            self.schema_version = int(raw)
            if self.schema_version > keys.SCHEMA_VERSION:
                raise IncompatibleSchema(
                    f"the data directory has schema version {self.schema_version}; this "
                    f"version of MemoryGraph reads up to {keys.SCHEMA_VERSION}"
                )
            if self.schema_version < keys.SCHEMA_VERSION:
                self.schema_version = upgrade(kv, self.schema_version, self.last_sequence)
        log_id = kv.get(keys.CF_META, keys.LOG_ID_KEY)
        if log_id is None:
            log_id = uuid.uuid4().bytes
            kv.write([(keys.CF_META, keys.LOG_ID_KEY, log_id)], sync=True)
        self.log_id = str(uuid.UUID(bytes=log_id))
        # Archival erasure, restores and trimming change the holes count; they take this lock
        # (writes that do none of these never do).
        self._holes_lock = threading.Lock()
        raw = kv.get(keys.CF_META, keys.EVENT_HOLES_KEY)
        if raw is None:  # a store from before the count was kept: count once
            if self.last_sequence:
                log.info("counting the event log's retained events (once, for this store)")
            self._event_holes = self._count_holes()
            kv.write([(keys.CF_META, keys.EVENT_HOLES_KEY, _int8(self._event_holes))], sync=True)
            if self.last_sequence:
                log.info("event log: %d events retained", self.retained_events())
        else:
            self._event_holes = int.from_bytes(raw, signed=True)
        self._counters = Counters(kv)

    # -- reads -------------------------------------------------------------------------------

    def get_node(self, node_id: bytes) -> Node | None:
        raw = self.kv.get(keys.CF_NODES, node_id)
        return decode_node(node_id, raw) if raw is not None else None

    def get_node_record(self, node_id: bytes) -> bytes | None:
        """The node as stored: a serialized `v1.Node`, ready to send."""
        return self.kv.get(keys.CF_NODES, node_id)

    def get_node_records(self, node_ids: list[bytes]) -> list[bytes | None]:
        return self.kv.multi_get(keys.CF_NODES, node_ids)

    def get_nodes(self, node_ids: list[bytes]) -> list[Node | None]:
        raws = self.kv.multi_get(keys.CF_NODES, node_ids)
        return [
            decode_node(nid, raw) if raw is not None else None
            for nid, raw in zip(node_ids, raws, strict=True)
        ]

    def scan_session(
        self, session_id: bytes, start: int = 0, end: int = MAX_TIME, *, reverse: bool = False
    ) -> Iterator[tuple[int, bytes, NodeKind]]:
        """(create time, node id, kind) of a session's nodes with start <= create time < end."""
        lower, upper = keys.session_index_range(session_id, start, end)
        for key in self.kv.scan_keys(keys.CF_BY_SESSION, lower, upper, reverse=reverse):
            create_time, node_id, code = keys.session_index_entry(key)
            yield create_time, node_id, keys.NODE_KINDS_BY_CODE[code]

    def scan_session_records(
        self,
        session_id: bytes,
        start: int = 0,
        end: int = MAX_TIME,
        *,
        reverse: bool = False,
        after: tuple[int, bytes] | None = None,
        first: int = 8,
    ) -> Iterator[list[tuple[bytes, bytes]]]:
        """A session's index entries in lists (`first` entries, then more): (key, the node's
        record), create times in [start, end), past the (create time, node id) `after` in scan
        order. `keys.session_index_entry` reads a key. The entries carry the records, so a
        session query reads this one range and looks nothing else up."""
        lower, upper = keys.session_index_range(session_id, start, end)
        if after is not None:
            position = keys.session_index_prefix(session_id, *after)
            if reverse:
                upper = min(upper, position)
            else:
                lower = max(lower, position + b"\xff")  # past every kind byte after that id
        for chunk in self.kv.scan_chunks(
            keys.CF_BY_SESSION, lower, upper, reverse=reverse, first=first
        ):
            yield [(key, unframe(value)) for key, value in chunk]

    def scan_kind(
        self, kind: NodeKind, start: int = 0, end: int = MAX_TIME, *, reverse: bool = False
    ) -> Iterator[tuple[int, bytes, bytes | None]]:
        """(create time, node id, session id or None) of a kind's nodes by create time."""
        lower, upper = keys.kind_index_range(kind, start, end)
        for key, value in self.kv.scan(keys.CF_BY_KIND, lower, upper, reverse=reverse):
            create_time, node_id = keys.index_position(key)
            yield create_time, node_id, value or None

    def edges(
        self,
        node_id: bytes,
        direction: Direction = Direction.OUTGOING,
        kinds: Iterable[EdgeKind] = (),
    ) -> Iterator[Edge]:
        """Edges touching `node_id`: outgoing ones first, then incoming ones."""
        wanted = frozenset(kinds)
        end = keys.prefix_end(node_id)
        if direction in (Direction.OUTGOING, Direction.BOTH):
            for key, value in self.kv.scan(keys.CF_EDGES_OUT, node_id, end):
                source, kind, target = keys.split_edge_key(key)
                if not wanted or kind in wanted:
                    yield decode_edge(source, kind, target, value)
        if direction in (Direction.INCOMING, Direction.BOTH):
            incoming = [
                keys.split_edge_key(key) for key, _ in self.kv.scan(keys.CF_EDGES_IN, node_id, end)
            ]
            incoming = [(t, k, s) for t, k, s in incoming if not wanted or k in wanted]
            raws = self.kv.multi_get(
                keys.CF_EDGES_OUT, [keys.edge_out_key(s, k, t) for t, k, s in incoming]
            )
            for (target, kind, source), raw in zip(incoming, raws, strict=True):
                if raw is not None:
                    yield decode_edge(source, kind, target, raw)

    def get_edge(self, key: EdgeKey) -> Edge | None:
        source, kind, target = key
        raw = self.kv.get(keys.CF_EDGES_OUT, keys.edge_out_key(source, kind, target))
        return decode_edge(source, kind, target, raw) if raw is not None else None

    def template_id(self, name: str) -> bytes | None:
        return self.kv.get(keys.CF_NAMES, keys.template_name_key(name))

    def cursor(self, name: str) -> int:
        """The event sequence a reader of the log named `name` has passed (0: none yet)."""
        raw = self.kv.get(keys.CF_META, keys.cursor_key(name))
        return int.from_bytes(raw) if raw else 0

    def save_cursor(self, name: str, sequence: int) -> None:
        """Record how far the reader `name` has got (not synced: after a crash it may read
        again what it read last, never skip anything)."""
        self.kv.write([(keys.CF_META, keys.cursor_key(name), sequence.to_bytes(8))], sync=False)

    def counts(self) -> GraphCounts:
        return self._counters.snapshot()

    def size_bytes(self) -> int:
        return self.kv.size_bytes()

    # -- writes ------------------------------------------------------------------------------

    def commit(self, changes: StoreChanges, *, sync: bool) -> None:
        """Write `changes` with every index and counter they imply, atomically; with `sync`,
        return only once they are on stable storage."""
        if self._committer is None:
            self._write(changes, sync=sync)
            self._publish(self.last_sequence)
        else:
            ticket = self.stage(changes)
            if sync:
                self.wait_durable(ticket)

    def stage(self, changes: StoreChanges) -> int:
        """Append `changes` without waiting for stable storage; returns the ticket to wait on
        (0 when there is nothing to wait for). Callers serialize stage() among themselves."""
        if self._committer is None:
            self._write(changes, sync=False)
            self._publish(self.last_sequence)
            return 0
        if self._committer.failed:
            raise CommitFailed("the write-ahead log could not be synced; the store is read-only")
        self._write(changes, sync=False)
        return self._committer.ticket(self.last_sequence)

    def wait_durable(self, ticket: int) -> None:
        """Block until the change set behind `ticket` is on stable storage."""
        if self._committer is not None and ticket:
            self._committer.wait(ticket)

    def _write(self, changes: StoreChanges, *, sync: bool) -> None:
        if changes.erase_history or changes.restored_events:
            with self._holes_lock:
                self._write_ops(changes, sync=sync)
        else:
            self._write_ops(changes, sync=sync)

    def _write_ops(self, changes: StoreChanges, *, sync: bool) -> None:
        ops: list[Op] = []
        edge_records: dict[int, bytes] = {}  # edge object -> its record, reused by its event
        deltas: dict[str, int] = {}

        for node in changes.created:
            node.record = record = encode_node(node)
            ops.append((keys.CF_NODES, node.id, record))
            ops += node_index_ops(node, record)
            Counters.count(deltas, node, +1)
        for before, after in changes.updated:
            after.record = record = encode_node(after)
            ops.append((keys.CF_NODES, after.id, record))
            if (entry := session_index_op(after, record)) is not None:
                ops.append(entry)
            Counters.count(deltas, before, -1)
            Counters.count(deltas, after, +1)
        for edge in changes.edges_created:
            edge_records[id(edge)] = record = encode_edge(edge)
            ops.append(
                (
                    keys.CF_EDGES_OUT,
                    keys.edge_out_key(edge.source_id, edge.kind, edge.target_id),
                    record,
                )
            )
            ops.append(
                (keys.CF_EDGES_IN, keys.edge_in_key(edge.target_id, edge.kind, edge.source_id), b"")
            )
        # Cascades may reach one edge from both of its ends: delete (and count) it once.
        edges_deleted = {e.key: e for e in changes.edges_deleted}
        for edge in edges_deleted.values():
            ops.append(
                (
                    keys.CF_EDGES_OUT,
                    keys.edge_out_key(edge.source_id, edge.kind, edge.target_id),
                    None,
                )
            )
            ops.append(
                (
                    keys.CF_EDGES_IN,
                    keys.edge_in_key(edge.target_id, edge.kind, edge.source_id),
                    None,
                )
            )
        for node in changes.deleted:
            ops.append((keys.CF_NODES, node.id, None))
            ops += node_index_ops(node, None)
            Counters.count(deltas, node, -1)
        Counters.count_edges(deltas, len(changes.edges_created) - len(edges_deleted))
        ops += self._counters.ops(deltas)
        # A deleted session takes its session-event index and restore time with it; its events
        # stay in the log unless the change erases its history (archival).
        gone = {n.id for n in changes.deleted if n.kind is NodeKind.SESSION}
        floor, restoring = 0, changes.restored_events  # an ordinary write: neither is used
        if changes.erase_history or restoring:
            floor = self.event_floor()
            # Retention may have moved the floor since the restore chose its events: those now
            # below it stay out (trimmed for good, and their holes no longer counted).
            restoring = [e for e in restoring if e.sequence >= floor]
        holes = -len(restoring)  # restores fill holes; erasure makes them
        for session_id in gone:
            for seq in self.session_event_sequences(session_id):
                ops.append(session_event_op(session_id, seq, present=False))
                if changes.erase_history:
                    ops.append((keys.CF_EVENTS, keys.event_key(seq), None))
                    holes += seq >= floor  # below the floor: trimmed already
            ops.append((keys.CF_META, keys.restored_key(session_id), None))
        sequence = self.last_sequence
        events = (
            changes.events
            if changes.events is not None
            else derive_events(changes, self._session_of)
        )
        for event in events:
            sequence += 1
            event.sequence = sequence
            known = edge_records.get(id(event.edge)) if event.edge is not None else None
            ops.append((keys.CF_EVENTS, keys.event_key(sequence), encode_event(event, known)))
            if event.type is EventType.SESSION_RESTORED and event.session_id is not None:
                restored = changes.time.to_bytes(8)
                ops.append((keys.CF_META, keys.restored_key(event.session_id), restored))
            elif (session := indexed_session(event)) is not None and session not in gone:
                ops.append(session_event_op(session, sequence))
        for event in restoring:
            ops.append((keys.CF_EVENTS, keys.event_key(event.sequence), encode_event(event)))
            if (session := indexed_session(event)) is not None:
                ops.append(session_event_op(session, event.sequence))
        if sequence != self.last_sequence:
            ops.append((keys.CF_META, keys.LAST_EVENT_KEY, sequence.to_bytes(8)))
        if holes:
            ops.append((keys.CF_META, keys.EVENT_HOLES_KEY, _int8(self._event_holes + holes)))
        self.kv.write(ops, sync=sync)
        self.last_sequence = sequence
        if holes:  # under the holes lock (a trim may be setting the count meanwhile otherwise)
            self._event_holes += holes
        self._counters.apply(deltas)

    def _session_of(self, node_id: bytes) -> bytes | None:
        node = self.get_node(node_id)
        return node.session_id if node is not None else None

    # -- events ------------------------------------------------------------------------------

    def add_listener(self, listener: Callable[[int], None]) -> None:
        """Call `listener(sequence)` whenever events up to `sequence` become visible."""
        self._listeners.append(listener)

    def _publish(self, sequence: int) -> None:
        for listener in self._listeners:
            listener(sequence)

    def read_events(self, first: int, last: int, limit: int) -> list[Event]:
        """Up to `limit` retained events with first <= sequence <= last, in order."""
        found = []
        for key, raw in self.kv.scan(
            keys.CF_EVENTS, keys.event_key(first), keys.event_key(last + 1)
        ):
            found.append(decode_event(int.from_bytes(key), raw))
            if len(found) >= limit:
                break
        return found

    def retained_events(self) -> int:
        """How many events the log holds: from the floor to the newest, less the holes."""
        return max(0, self.last_sequence - self.event_floor() + 1 - self._event_holes)

    def _count_holes(self, end: int | None = None) -> int:
        """Sequences from the floor up to `end` (exclusive; default: past the newest) that hold
        no event, counted in the log."""
        first = self.event_floor()
        end = self.last_sequence + 1 if end is None else end
        if end <= first:
            return 0
        present = sum(
            1 for _ in self.kv.scan_keys(keys.CF_EVENTS, keys.event_key(first), keys.event_key(end))
        )
        return end - first - present

    def oldest_sequence(self) -> int:
        """Sequence of the oldest retained event (last_sequence + 1 when none is retained)."""
        for key, _ in self.kv.scan(keys.CF_EVENTS, keys.event_key(0), keys.event_key(2**63)):
            return int.from_bytes(key)
        return self.last_sequence + 1

    def event_floor(self) -> int:
        """The first sequence retention keeps; events below it were trimmed for good."""
        raw = self.kv.get(keys.CF_META, keys.EVENT_FLOOR_KEY)
        return int.from_bytes(raw) if raw else 1

    def event_time(self, sequence: int) -> int | None:
        """Time of the first retained event at or after `sequence` (the log has holes where
        archival erased a session's history), or None when there is none."""
        for key, raw in self.kv.scan(
            keys.CF_EVENTS, keys.event_key(sequence), keys.event_key(self.last_sequence + 1)
        ):
            return decode_event(int.from_bytes(key), raw).time
        return None

    def trim_events(self, before: int) -> None:
        """Forget events with sequence < `before`.

        The session index keeps entries for trimmed events; readers skip them and archival
        erases them with the session. The floor never moves down."""
        with self._holes_lock:
            if before > self.event_floor():
                # Holes below the new floor stop counting; past the newest event there are none.
                holes = self._event_holes - self._count_holes(min(before, self.last_sequence + 1))
                self.kv.write(
                    [
                        (keys.CF_META, keys.EVENT_FLOOR_KEY, before.to_bytes(8)),
                        (keys.CF_META, keys.EVENT_HOLES_KEY, _int8(holes)),
                    ],
                    sync=False,
                )
                self._event_holes = holes
            # Also what a crash between the floor's write and this left below the floor.
            self.kv.delete_range(keys.CF_EVENTS, keys.event_key(0), keys.event_key(before))

    def restorable_events(self, events: list[Event], log_id: str) -> list[Event]:
        """Those of `events` (from the log `log_id`) that can go back at their own sequence
        numbers: only into the log they came from, not below its retention floor, not past its
        end, and never over another event."""
        if log_id != self.log_id:
            return []
        floor, last = self.event_floor(), self.last_sequence
        fits = [e for e in events if floor <= e.sequence <= last]
        taken = self.kv.multi_get(keys.CF_EVENTS, [keys.event_key(e.sequence) for e in fits])
        return [e for e, raw in zip(fits, taken, strict=True) if raw is None]

    def restore_time(self, session_id: bytes) -> int:
        """When the session was last restored from an archive (0: never)."""
        raw = self.kv.get(keys.CF_META, keys.restored_key(session_id))
        return int.from_bytes(raw) if raw else 0

    def session_event_sequences(self, session_id: bytes) -> list[int]:
        """Sequences the session index lists for a session (trimmed ones included)."""
        end = keys.prefix_end(session_id)
        return [
            int.from_bytes(key[keys.ID_LEN :])
            for key, _ in self.kv.scan(keys.CF_SESSION_EVENTS, session_id, end)
        ]

    def last_session_event_time(self, session_id: bytes) -> int:
        """Time of the session's newest event (0: none retained). Retention trims from the
        oldest end, so when the newest indexed event is gone, every older one is too."""
        end = keys.prefix_end(session_id)
        for key, _ in self.kv.scan(keys.CF_SESSION_EVENTS, session_id, end, reverse=True):
            raw = self.kv.get(keys.CF_EVENTS, key[keys.ID_LEN :])
            return decode_event(int.from_bytes(key[keys.ID_LEN :]), raw).time if raw else 0
        return 0

    def session_events(self, session_id: bytes) -> list[Event]:
        """A session's retained events, in sequence order."""
        sequences = self.session_event_sequences(session_id)
        raws = self.kv.multi_get(keys.CF_EVENTS, [keys.event_key(s) for s in sequences])
        return [
            decode_event(seq, raw)
            for seq, raw in zip(sequences, raws, strict=True)
            if raw is not None
        ]

    def close(self) -> None:
        if self._committer is not None:
            self._committer.close()
        self.kv.close()
