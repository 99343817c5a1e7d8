"""The graph's storage layout on top of any `KeyValueStore`: records, indexes and counters.

`GraphStore.commit` turns a `StoreChanges` (nodes and edges created, updated, deleted) into one
atomic batch that also maintains every index and counter, so no caller can forget one. It does
not decide what a change means for the graph (cascades, automatic edges): the service layer does
that and hands over the complete change.
"""

from __future__ import annotations

import contextlib
import heapq
import itertools
import logging
import random
from collections.abc import Callable, Iterable, Iterator

from memorygraph.errors import FailedPrecondition, MemoryGraphError, Unavailable
from memorygraph.model import MAX_TIME, Direction, Edge, EdgeKey, EdgeKind, Event, Node, NodeKind
from memorygraph.store import keys, moves
from memorygraph.store.changes import StoreChanges, UnwritableChange
from memorygraph.store.commit import CommitFailed, GroupCommitter
from memorygraph.store.counters import Counters, GraphCounts
from memorygraph.store.decoded import DecodedSessions
from memorygraph.store.eventlog import EventLog
from memorygraph.store.kv import KeyValueStore, Op
from memorygraph.store.layout import graph_ops, session_entry_position
from memorygraph.store.records import decode_edge, decode_node
from memorygraph.store.shards import DEFAULT_SHARDS, Shards
from memorygraph.store.split import Outbox, SplitKV, applied_key, decode_part, encode_part
from memorygraph.store.upgrade import upgrade

__all__ = [
    "GraphCounts",
    "GraphStore",
    "IncompatibleSchema",
    "ShardCountMismatch",
    "StoreChanges",
    "UnwritableChange",
]

log = logging.getLogger("memorygraph.store")


class IncompatibleSchema(MemoryGraphError):
    """The data directory was written by a newer, incompatible version."""


class ShardCountMismatch(MemoryGraphError):
    """The data directory has another number of shards than the one asked for."""

    def __init__(self, count: int, asked: int, where: str = "the data directory") -> None:
        super().__init__(
            f"{where} has {count} shards and cannot be opened with {asked}: the "
            f"number of shards is fixed when a data directory is made (start with --shards "
            f"{count}, or leave the option out)"
        )
        self.count, self.asked = count, asked


class GraphStore:
    """Typed reads and atomic change sets over a key-value engine.

    With `group_commit` (the `durable` mode), `stage` appends a change set without syncing and
    `wait_durable` blocks until a shared sync covers it; see `commit.GroupCommitter`.

    The data lives in `shards` shards (see `shards`), a number fixed when the data directory
    is made: None takes the directory's own, or the default for a new one; another number than
    the directory's is refused (`ShardCountMismatch`).

    Over a `SplitKV` the store is one worker's: it serves the shards that worker owns and
    reaches the others through its peers (see `split`); scans over every shard cover its own.
    """

    def __init__(
        self,
        kv: KeyValueStore,
        *,
        group_commit: bool = False,
        on_group: Callable[[int, float], None] | None = None,
        shards: int | None = None,
    ) -> None:
        self.kv = kv
        self._split = kv if isinstance(kv, SplitKV) else None
        own: KeyValueStore = kv.local if isinstance(kv, SplitKV) else kv
        self._committer = (
            GroupCommitter(kv.sync_wal, on_group=on_group, on_durable=self._publish)
            if group_commit
            else None
        )
        # Called with the newest sequence number readers may see (durable in group-commit mode).
        self._listeners: list[Callable[[int], None]] = []
        self._sessions = DecodedSessions()
        raw = own.get(keys.CF_META, keys.SCHEMA_VERSION_KEY)
        found = int(raw) if raw is not None else None
        if found is not None and found > keys.SCHEMA_VERSION:
            raise IncompatibleSchema(
                f"the data directory has schema version {found}; this version of MemoryGraph "
                f"reads up to {keys.SCHEMA_VERSION}"
            )
        # Refused (another count) before anything is written; recorded for a new directory.
        self.shards = Shards(_shard_count(own, shards))
        if found is None:
            own.write(
                [(keys.CF_META, keys.SCHEMA_VERSION_KEY, str(keys.SCHEMA_VERSION).encode())],
                sync=True,
            )
            self.schema_version = keys.SCHEMA_VERSION
        elif found < keys.SCHEMA_VERSION:
            self.schema_version = upgrade(own, found, self.shards)
        else:
            self.schema_version = found
        self._load_owned()
        owns = None if self._split is None else self._split.workers.owns_shard
        self.events = EventLog(kv, self.shards, owns)
        self._outbox = Outbox(self._split) if self._split is not None else None
        self._counters = Counters(kv)
        # Sessions being deleted in steps (DeleteSession): they and every node of theirs are
        # gone from every read from the commit that hides them on.
        self._hiding: set[bytes] = set()
        self._hidden: set[bytes] = set()
        self._load_hidden()

    def _load_owned(self) -> None:
        """What follows from the shards this store serves (all of them, or its worker's)."""
        kv = self.kv
        self._owned = (
            self.shards.prefixes()
            if self._split is None
            else [self.shards.prefix(s) for s in self._split.workers.owned()]
        )
        # Whether any node lives off the shard its id routes to (see `_locate`); a worker
        # cannot know what other workers route, so it always looks.
        self._routed = self._split is not None or any(
            True for _ in kv.scan_keys(keys.CF_ROUTES, b"", b"\xff" * 3)
        )
        # (shard, kind) pairs that may hold nodes: kind scans skip the others (an index seek
        # per shard and kind is most of what a scan over many shards costs). Added to by
        # every write that creates a node, never taken from: one emptied is merely scanned.
        self._filled = {
            (shard, kind)
            for shard in self._owned
            for kind in NodeKind
            if any(
                True
                for _ in kv.scan_keys(
                    keys.CF_BY_KIND, *keys.kind_index_range(shard, kind, 0, MAX_TIME)
                )
            )
        }

    def _load_hidden(self) -> None:
        left = [
            key[len(keys.DELETING_PREFIX) :]
            for key in self.kv.scan_keys(
                keys.CF_META, keys.DELETING_PREFIX, keys.prefix_end(keys.DELETING_PREFIX)
            )
        ]
        # Made aside and published at once: a reload never shows a hidden session meanwhile.
        self._hidden, self._hiding = self._hidden_with(set(), left), set(left)
        self._drop_history_index(left)

    # -- moving shards between workers (see `moves`; the caller holds the writers' lock) -------

    def adopt_shard(self, shard: int, epoch: int) -> bool:
        """Count this worker's copy of `shard` in for `epoch`, before it owns the shard (again
        after a new copy: the difference; once it owns it, its own writes count)."""
        split = self._require_split()
        if split.workers.owns_shard(shard):
            raise ValueError(f"shard {shard} is this worker's already")
        done = moves.adopt_shard(split.local, shard, self.shards, epoch)
        self._reload()
        return done

    def release_shard(self, shard: int, epoch: int) -> None:
        """Count `shard` out and delete this worker's copy (once another owns it)."""
        self.count_out_shard(shard, epoch)
        self.drop_shard(shard)

    def undo_adopt(self, shard: int, epoch: int) -> bool:
        """Take back what `adopt_shard` counted in for `epoch`, before the map named this
        worker the shard's owner (a move that stopped there)."""
        done = moves.undo_count_in(self._not_owning(shard).local, shard, epoch)
        self._reload()
        return done

    def count_out_shard(self, shard: int, epoch: int) -> bool:
        """Take `shard` out of this worker's counts, once per `epoch` (once another owns it)."""
        split = self._not_owning(shard)
        done = moves.count_out(split.local, shard, self.shards, epoch)
        self._reload()
        return done

    def drop_shard(self, shard: int) -> None:
        """Delete this worker's copy of `shard` (counted out, or never counted in)."""
        moves.drop_shard(self._not_owning(shard).local, shard, self.shards)

    def holds_shard(self, shard: int) -> bool:
        """Whether this worker's engine holds nodes of `shard`."""
        return moves.holds(self._require_split().local, shard, self.shards)

    def _not_owning(self, shard: int) -> SplitKV:
        split = self._require_split()
        if split.workers.owns_shard(shard):
            raise ValueError(f"shard {shard} is still this worker's")
        return split

    def reassign(self, owners: list[int]) -> None:
        """Serve the shards `owners` gives this worker from now on."""
        split = self._require_split()
        split.workers.reassign(owners)
        self._reload()

    def _require_split(self) -> SplitKV:
        if self._split is None:
            raise RuntimeError("only a worker's store moves shards")
        return self._split

    def _reload(self) -> None:
        """Read again what this store keeps in memory of its engine's contents."""
        self._load_owned()
        self._counters = Counters(self.kv)
        self.events.reload()
        self._load_hidden()

    # -- where things are ------------------------------------------------------------------------

    def _locate(self, node_id: bytes) -> bytes:
        """The key prefix of the shard `node_id` lives on: the one its id routes to, unless a
        route says otherwise (a node whose id a caller chose, or one made before ids carried
        shard tags, in a session on another shard)."""
        own = self.shards.prefix_of(node_id)
        if self._routed and (routed := self.kv.get(keys.CF_ROUTES, own + node_id)) is not None:
            return routed
        return own

    def routed(self, node: Node) -> bool:
        """Whether `node` lives off the shard its id routes to (found through a route)."""
        return self.shards.route_of(node) is not None

    def _session_shard(self, session_id: bytes) -> bytes:
        """The key prefix of a session's shard (a session is always where its id routes)."""
        return self.shards.prefix_of(session_id)

    def _node_key(self, node_id: bytes) -> bytes:
        return self._locate(node_id) + node_id

    # -- reads -------------------------------------------------------------------------------

    def get_node(self, node_id: bytes) -> Node | None:
        if node_id in self._hidden:
            return None
        raw = self.kv.get(keys.CF_NODES, self._node_key(node_id))
        return self._sessions.decode(node_id, raw) if raw is not None else None

    def get_node_record(self, node_id: bytes) -> bytes | None:
        """The node as stored: a serialized `v1.Node`, ready to send."""
        if node_id in self._hidden:
            return None
        return self.kv.get(keys.CF_NODES, self._node_key(node_id))

    def get_node_records(self, node_ids: list[bytes]) -> list[bytes | None]:
        hidden = self._hidden
        node_keys = [self._node_key(n) for n in node_ids]
        if not hidden:
            return self.kv.multi_get(keys.CF_NODES, node_keys)
        # Which are hidden is settled before reading: a node a deletion step removes (from the
        # store, then from `hidden`) must not be read before and found unhidden after.
        shown = [n not in hidden for n in node_ids]
        raws = self.kv.multi_get(keys.CF_NODES, node_keys)
        return [r if keep else None for keep, r in zip(shown, raws, strict=True)]

    def get_nodes(self, node_ids: list[bytes]) -> list[Node | None]:
        return [
            decode_node(nid, raw) if raw is not None else None
            for nid, raw in zip(node_ids, self.get_node_records(node_ids), strict=True)
        ]

    def node_stored(self, node_id: bytes) -> bool:
        """Whether a record with this id is stored, readable or not (hidden ones included)."""
        return self.kv.get(keys.CF_NODES, self._node_key(node_id)) is not None

    def nodes_stored(self, node_ids: list[bytes]) -> list[bool]:
        node_keys = [self._node_key(n) for n in node_ids]
        return [raw is not None for raw in self.kv.multi_get(keys.CF_NODES, node_keys)]

    def scan_session(
        self, session_id: bytes, start: int = 0, end: int = MAX_TIME, *, reverse: bool = False
    ) -> Iterator[tuple[int, bytes, NodeKind]]:
        """(create time, node id, kind) of a session's nodes with start <= create time < end."""
        if session_id in self._hidden:
            return
        shard = self._session_shard(session_id)
        lower, upper = keys.session_index_range(shard, session_id, start, end)
        for key in self.kv.scan_keys(keys.CF_BY_SESSION, lower, upper, reverse=reverse):
            create_time, node_id, code = keys.session_index_entry(key)
            yield create_time, node_id, keys.NODE_KINDS_BY_CODE[code]

    def scan_session_entries(
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
        record framed as a QueryBatch `nodes` entry), create times in [start, end), past the
        (create time, node id) `after` in scan order. `keys.session_index_entry` reads a key.
        The entries carry the records, so a session query reads this one range and looks
        nothing else up."""
        if session_id in self._hidden:
            return
        lower, upper = self._session_range(session_id, start, end, after, reverse=reverse)
        yield from self.kv.scan_chunks(
            keys.CF_BY_SESSION, lower, upper, reverse=reverse, first=first
        )

    def scan_session_records(
        self,
        session_id: bytes,
        start: int = 0,
        end: int = MAX_TIME,
        *,
        after: tuple[int, bytes] | None = None,
        first: int = 8,
    ) -> Iterator[list[bytes]]:
        """`scan_session_entries` in create-time order without the keys: the framed records
        alone, read at a quarter to a third less per entry (what a query of a session
        without a kind filter wants). `layout.session_entry_position` tells where one sits."""
        if session_id in self._hidden:
            return
        lower, upper = self._session_range(session_id, start, end, after, reverse=False)
        shard = self._session_shard(session_id)

        def resume(entry: bytes) -> bytes:
            position = session_entry_position(entry)
            return keys.session_index_prefix(shard, session_id, *position) + b"\xff"

        yield from self.kv.scan_value_chunks(
            keys.CF_BY_SESSION, lower, upper, resume=resume, first=first
        )

    def _session_range(
        self,
        session_id: bytes,
        start: int,
        end: int,
        after: tuple[int, bytes] | None,
        *,
        reverse: bool,
    ) -> tuple[bytes, bytes]:
        """[lower, upper) of a session's index entries with create times in [start, end),
        past the (create time, node id) `after` in scan order."""
        shard = self._session_shard(session_id)
        lower, upper = keys.session_index_range(shard, session_id, start, end)
        if after is not None:
            position = keys.session_index_prefix(shard, session_id, *after)
            if reverse:
                upper = min(upper, position)
            else:
                lower = max(lower, position + b"\xff")  # past every kind byte after that id
        return lower, upper

    def scan_kind(
        self, kind: NodeKind, start: int = 0, end: int = MAX_TIME, *, reverse: bool = False
    ) -> Iterator[tuple[int, bytes, bytes | None]]:
        """(create time, node id, session id or None) of a kind's nodes by create time, over
        every shard (each shard's index is in that order: they are merged)."""
        filled = self._filled
        scans = [
            self._scan_kind(shard, kind, start, end, reverse)
            for shard in self._owned
            if (shard, kind) in filled
        ]
        if not scans:
            return
        hidden = self._hidden
        for entry in scans[0] if len(scans) == 1 else heapq.merge(*scans, reverse=reverse):
            if entry[1] not in hidden:
                yield entry

    def _scan_kind(
        self, shard: bytes, kind: NodeKind, start: int, end: int, reverse: bool
    ) -> Iterator[tuple[int, bytes, bytes | None]]:
        lower, upper = keys.kind_index_range(shard, kind, start, end)
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
        if node_id in self._hidden:
            return
        hidden = self._hidden
        for edge in self._edges(node_id, direction, kinds):
            if edge.source_id not in hidden and edge.target_id not in hidden:
                yield edge

    def all_edges(self, node_id: bytes) -> list[Edge]:
        """Every edge touching `node_id`, those to nodes of a session being deleted included
        (a node deleted now takes them along)."""
        return list(self._edges(node_id, Direction.BOTH))

    def _edges(
        self, node_id: bytes, direction: Direction, kinds: Iterable[EdgeKind] = ()
    ) -> Iterator[Edge]:
        wanted = frozenset(kinds)
        start = self._locate(node_id) + node_id
        end = keys.prefix_end(start)
        if direction in (Direction.OUTGOING, Direction.BOTH):
            for key, value in self.kv.scan(keys.CF_EDGES_OUT, start, end):
                source, kind, target = keys.split_edge_key(key)
                if not wanted or kind in wanted:
                    yield decode_edge(source, kind, target, value)
        if direction in (Direction.INCOMING, Direction.BOTH):
            incoming = [
                keys.split_edge_key(key) for key in self.kv.scan_keys(keys.CF_EDGES_IN, start, end)
            ]
            incoming = [(t, k, s) for t, k, s in incoming if not wanted or k in wanted]
            raws = self.kv.multi_get(
                keys.CF_EDGES_OUT,
                [keys.edge_out_key(self._locate(s), s, k, t) for t, k, s in incoming],
            )
            for (target, kind, source), raw in zip(incoming, raws, strict=True):
                if raw is not None:
                    yield decode_edge(source, kind, target, raw)

    def get_edge(self, key: EdgeKey) -> Edge | None:
        source, kind, target = key
        if source in self._hidden or target in self._hidden:
            return None
        edge_key = keys.edge_out_key(self._locate(source), source, kind, target)
        raw = self.kv.get(keys.CF_EDGES_OUT, edge_key)
        return decode_edge(source, kind, target, raw) if raw is not None else None

    def template_id(self, name: str) -> bytes | None:
        shard = self.shards.prefix(self.shards.of_name(name))
        return self.kv.get(keys.CF_NAMES, keys.template_name_key(shard, name))

    def cursor(self, name: str) -> int:
        """The event sequence a reader of the log named `name` has passed (0: none yet)."""
        raw = self.kv.get(keys.CF_META, keys.cursor_key(name))
        return int.from_bytes(raw) if raw else 0

    def save_cursor(self, name: str, sequence: int) -> None:
        """Record how far the reader `name` has got (not synced: after a crash it may read
        again what it read last, never skip anything)."""
        self.kv.write([(keys.CF_META, keys.cursor_key(name), sequence.to_bytes(8))], sync=False)

    # -- sessions being deleted ----------------------------------------------------------------

    def _hide(self, sessions: list[bytes]) -> None:
        """Take `sessions` and all their nodes out of every read, all at once: the new set is
        made aside and published in one assignment."""
        self._hidden = self._hidden_with(self._hidden, sessions)
        self._hiding.update(sessions)

    def _hidden_with(self, hidden: set[bytes], sessions: list[bytes]) -> set[bytes]:
        """`hidden` and `sessions` with all their nodes, as a new set."""
        hidden = set(hidden)
        for session_id in sessions:
            hidden.add(session_id)
            shard = self._session_shard(session_id)
            lower, upper = keys.session_index_range(shard, session_id, 0, MAX_TIME)
            hidden.update(
                keys.session_index_entry(key)[1]
                for key in self.kv.scan_keys(keys.CF_BY_SESSION, lower, upper)
            )
        return hidden

    def _drop_history_index(self, sessions: list[bytes]) -> None:
        """A hidden session's history stays in the log, but no read needs its session-event
        index any more: dropped at once (one range deletion each; again after a crash, which
        is harmless), and the events of the steps to come are not indexed."""
        for session_id in sessions:
            start = self._session_shard(session_id) + session_id
            self.kv.delete_range(keys.CF_SESSION_EVENTS, start, keys.prefix_end(start))

    def sessions_being_deleted(self) -> list[bytes]:
        return sorted(self._hiding)

    def deletion_step(
        self, session_id: bytes, limit: int, after: bytes = b""
    ) -> tuple[list[Node], list[Edge], bytes]:
        """The next part of a session being deleted, read past the hiding: up to `limit` of
        its nodes still stored (past the session-index key `after`, where the previous step
        ended: scanning from the start would step over every entry deleted so far), with
        every edge still touching them, and the key to go on from; once none is left, the
        session's own node and its edges. Nothing when the session is gone."""
        shard = self._session_shard(session_id)
        lower, upper = keys.session_index_range(shard, session_id, 0, MAX_TIME)
        entries = list(
            itertools.islice(
                self.kv.scan_keys(keys.CF_BY_SESSION, max(lower, after + b"\x00"), upper), limit
            )
        )
        ids = [keys.session_index_entry(key)[1] for key in entries] or [session_id]
        raws = self.kv.multi_get(keys.CF_NODES, [shard + i for i in ids])
        nodes = [decode_node(i, r) for i, r in zip(ids, raws, strict=True) if r is not None]
        edges: dict[EdgeKey, Edge] = {}
        for node in nodes:
            for edge in self._edges(node.id, Direction.BOTH):
                edges[edge.key] = edge
        return nodes, list(edges.values()), entries[-1] if entries else after

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
            # These put events at or take them from sequences a trim may be passing.
            with self.events.count_lock:
                self._write_batch(changes, sync=sync)
        else:
            self._write_batch(changes, sync=sync)

    def _write_batch(self, changes: StoreChanges, *, sync: bool) -> None:
        """One batch: the records and indexes of the change, the counts it moves and its
        events."""
        try:
            written = graph_ops(changes, self.shards, self._locate)
            ops = written.ops
            deltas = Counters.deltas(changes)
            ops += self._counters.ops(deltas)
            log = self.events.append(
                changes, written.edge_records, self._session_of, self._hiding, self._locate
            )
        except Unavailable:  # another worker's shards could not be reached (see `split`)
            raise
        except Exception as exc:  # before the write: nothing of the change is stored
            raise UnwritableChange(f"the change cannot be written: {exc}") from exc
        ops += log.ops
        # Reads follow routes and scan shards of a kind from before the write on.
        if written.routed:
            self._routed = True
        self._filled |= written.filled
        ops += [(keys.CF_META, keys.deleting_key(s), b"") for s in changes.hide_sessions]
        done = [n.id for n in changes.deleted if n.id in self._hiding]
        ops += [(keys.CF_META, keys.deleting_key(s), None) for s in done]
        if changes.hide_sessions:
            # Hidden before the write: no reader sees the session go while its nodes stay.
            shown, shown_sessions = self._hidden, set(self._hiding)
            self._hide(changes.hide_sessions)
            try:
                self._put(ops, log.remote, changes.time, sync=sync)
            except BaseException:
                self._hidden, self._hiding = shown, shown_sessions
                raise
            self._drop_history_index(changes.hide_sessions)
        else:
            self._put(ops, log.remote, changes.time, sync=sync)
        self.events.applied(log)
        self._counters.apply(deltas)
        for node in itertools.chain(changes.created, (after for _, after in changes.updated)):
            if node.kind is NodeKind.SESSION and node.record is not None:
                self._sessions.keep(node, node.record)
        if self._hidden:  # once deleted they are gone anyway: removed in place
            self._hidden.difference_update(n.id for n in changes.deleted)
            self._hiding.difference_update(done)

    def _put(
        self, ops: list[Op], remote_events: list[tuple[int, Event]], time: int, *, sync: bool
    ) -> None:
        """Write `ops`; a worker's write that reaches other workers' shards puts their parts
        in its outbox, syncs, and delivers them (see `split`)."""
        if self._split is None or self._outbox is None:
            self.kv.write(ops, sync=sync)
            return
        local, remote = self._split.partition(ops)
        events: dict[int, list[Event]] = {}
        for shard, event in remote_events:
            events.setdefault(self._split.workers.owner(shard), []).append(event)
        if not remote and not events:
            self._split.local.write(local, sync=sync)
            return
        for owner in sorted(remote.keys() | events.keys()):
            self._split.join(owner)  # its lock, if the write did not read there
        parts = {
            owner: encode_part(time, remote.get(owner, []), events.get(owner, []))
            for owner in remote.keys() | events.keys()
        }
        outbox_ops, entries = self._outbox.add(parts)
        self._split.local.write(local + outbox_ops, sync=True)
        self._outbox.written(entries)  # never delivered unless written
        self._outbox.deliver(parts.keys())  # the workers this write holds

    def undelivered(self, worker: int | None = None) -> int:
        """Parts of this worker's writes still to deliver to `worker` (None: to any)."""
        return self._outbox.pending(worker) if self._outbox is not None else 0

    def deliver_outbox(self) -> bool:
        """Deliver what other workers have still to apply; True when nothing is left."""
        return self._outbox.retry() if self._outbox is not None else True

    def apply_part(self, origin: int, sequence: int, part: bytes, *, now: int = 0) -> None:
        """Apply outbox entry `sequence` of worker `origin` (its write's part for this worker:
        keys of this worker's shards and their events) unless it was applied before. Called
        under this worker's writers' lock; `now` is this worker's clock (its events are
        numbered from it, and from the write's time when that is later)."""
        if self._split is None or self._outbox is None:
            raise RuntimeError("only a worker's store takes parts of other workers' writes")
        if sequence <= self._outbox.applied(origin):
            return
        time, ops, events = decode_part(part)
        stray = next(
            (
                int.from_bytes(key[: keys.SHARD_LEN])
                for cf, key, _ in ops
                if cf in keys.SHARDED_FAMILIES
                and not self._split.workers.owns(key[: keys.SHARD_LEN])
            ),
            None,
        )
        if stray is not None:  # its sender has not heard that the shard moved: not lost here
            raise FailedPrecondition(
                f"a part of worker {origin}'s write holds keys of shard {stray}, which this "
                "worker no longer owns; it is delivered again once its sender takes the map"
            )
        log = self.events.append(
            StoreChanges(time=max(time, now), events=events), {}, self._session_of, (), self._locate
        )
        if log.remote:
            raise RuntimeError("a part of another worker's write holds events of other shards")
        done = (keys.CF_META, applied_key(origin), sequence.to_bytes(8))
        # A hidden session's last step deleted on another worker (its deletion began there,
        # before its shard moved here): its marker here goes with it.
        finished = [
            key[keys.SHARD_LEN :]
            for cf, key, value in ops
            if cf == keys.CF_NODES and value is None and key[keys.SHARD_LEN :] in self._hiding
        ]
        markers = [(keys.CF_META, keys.deleting_key(s), None) for s in finished]
        self._split.local.write([*ops, *log.ops, *markers, done], sync=True)
        if finished:
            self._hiding.difference_update(finished)
            self._hidden = self._hidden - set(finished)
        self._filled |= {
            (key[: keys.SHARD_LEN], keys.NODE_KINDS_BY_CODE[key[keys.SHARD_LEN]])
            for cf, key, value in ops
            if cf == keys.CF_BY_KIND and value is not None
        }
        self.events.applied(log)
        self._publish(self.events.last_sequence)

    def writing(self) -> contextlib.AbstractContextManager[None]:
        """The scope of one write (a worker's: the other workers it reaches stay locked until
        it is delivered)."""
        return self._split.writing() if self._split is not None else contextlib.nullcontext()

    def new_tag(self) -> int | None:
        """A shard tag for an id this store makes that starts a tag of its own (a session, a
        global node): random, on one of this worker's shards (None: any shard will do; so
        for a worker whose shards all moved away)."""
        if self._split is None:
            return None
        owned = self._split.workers.owned()
        if not owned:
            return None
        shard = random.choice(owned)
        return random.randrange(0, 1 << 16, self.shards.count) + shard

    def _session_of(self, node_id: bytes) -> bytes | None:
        raw = self.kv.get(keys.CF_NODES, self._node_key(node_id))  # hidden ones too
        return decode_node(node_id, raw).session_id if raw is not None else None

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


def _shard_count(kv: KeyValueStore, asked: int | None) -> int:
    """The data directory's number of shards: the one it records (a directory from before
    shards records none and takes the one asked for), refused when another is asked for."""
    raw = kv.get(keys.CF_META, keys.SHARDS_KEY)
    if raw is None:
        count = Shards(asked if asked is not None else DEFAULT_SHARDS).count
        kv.write([(keys.CF_META, keys.SHARDS_KEY, str(count).encode())], sync=True)
        return count
    count = int(raw)
    if asked is not None and asked != count:
        raise ShardCountMismatch(count, asked)
    return count
