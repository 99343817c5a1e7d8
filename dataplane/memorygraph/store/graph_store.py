"""The graph's storage layout on top of any `KeyValueStore`: records, indexes and counters.

`GraphStore.commit` turns a `StoreChanges` (nodes and edges created, updated, deleted) into one
atomic batch that also maintains every index and counter, so no caller can forget one. It does
not decide what a change means for the graph (cascades, automatic edges): the service layer does
that and hands over the complete change.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Iterator

from memorygraph.codec.framing import unframe
from memorygraph.errors import MemoryGraphError
from memorygraph.model import MAX_TIME, Direction, Edge, EdgeKey, EdgeKind, Node, NodeKind
from memorygraph.store import keys
from memorygraph.store.changes import StoreChanges, UnwritableChange
from memorygraph.store.commit import CommitFailed, GroupCommitter
from memorygraph.store.counters import Counters, GraphCounts
from memorygraph.store.eventlog import EventLog
from memorygraph.store.kv import KeyValueStore
from memorygraph.store.layout import graph_ops
from memorygraph.store.records import decode_edge, decode_node
from memorygraph.store.upgrade import upgrade

__all__ = ["GraphCounts", "GraphStore", "IncompatibleSchema", "StoreChanges", "UnwritableChange"]

log = logging.getLogger("memorygraph.store")


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
                self.schema_version = upgrade(kv, self.schema_version)
        self.events = EventLog(kv)
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
            self._publish(self.events.last_sequence)
        else:
            ticket = self.stage(changes)
            if sync:
                self.wait_durable(ticket)

    def stage(self, changes: StoreChanges) -> int:
        """Append `changes` without waiting for stable storage; returns the ticket to wait on
        (0 when there is nothing to wait for). Callers serialize stage() among themselves."""
        if self._committer is None:
            self._write(changes, sync=False)
            self._publish(self.events.last_sequence)
            return 0
        if self._committer.failed:
            raise CommitFailed("the write-ahead log could not be synced; the store is read-only")
        self._write(changes, sync=False)
        return self._committer.ticket(self.events.last_sequence)

    def wait_durable(self, ticket: int) -> None:
        """Block until the change set behind `ticket` is on stable storage."""
        if self._committer is not None and ticket:
            self._committer.wait(ticket)

    def _write(self, changes: StoreChanges, *, sync: bool) -> None:
        changes.drop_repeated_edges()
        if changes.erase_history or changes.restored_events:
            # These change the count of holes in the log, which a trim may be setting too.
            with self.events.holes_lock:
                self._write_batch(changes, sync=sync)
        else:
            self._write_batch(changes, sync=sync)

    def _write_batch(self, changes: StoreChanges, *, sync: bool) -> None:
        """One batch: the records and indexes of the change, the counts it moves and its
        events."""
        try:
            ops, edge_records = graph_ops(changes)
            deltas = Counters.deltas(changes)
            ops += self._counters.ops(deltas)
            log = self.events.append(changes, edge_records, self._session_of)
        except Exception as exc:  # before the write: nothing of the change is stored
            raise UnwritableChange(f"the change cannot be written: {exc}") from exc
        ops += log.ops
        self.kv.write(ops, sync=sync)
        self.events.applied(log)
        self._counters.apply(deltas)

    def _session_of(self, node_id: bytes) -> bytes | None:
        node = self.get_node(node_id)
        return node.session_id if node is not None else None

    # -- visibility ------------------------------------------------------------------------------

    def add_listener(self, listener: Callable[[int], None]) -> None:
        """Call `listener(sequence)` whenever events up to `sequence` become visible."""
        self._listeners.append(listener)

    def _publish(self, sequence: int) -> None:
        for listener in self._listeners:
            listener(sequence)

    def close(self) -> None:
        if self._committer is not None:
            self._committer.close()
        self.kv.close()
