"""The archival protocol: a session exported whole, deleted only while it still matches what
was shipped, and brought back from an export.

Archival ships an export (`graph.export`) somewhere else first; `archive_session` then removes
the session with its history, but only while it still exports to the digest that was verified,
and only once the registry has every report about it. `restore_session` writes an export back
with its ids, edges and retained events.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

from memorygraph import deadline
from memorygraph.errors import AlreadyExists, FailedPrecondition
from memorygraph.graph.checks import Limits, require_kind
from memorygraph.graph.export import SessionExport
from memorygraph.graph.hooks import GraphHooks, Read
from memorygraph.graph.query import Candidate, archive_candidates, page_bytes
from memorygraph.graph.restore import check_export, plan_restore
from memorygraph.graph.writes import Writer
from memorygraph.model import Direction, Edge, EdgeKey, Event, EventType, Node, NodeKind, format_id
from memorygraph.store import GraphStore

__all__ = ["ARCHIVE_RECHECK_EVENTS", "RestoreResult", "SessionArchive"]

# ArchiveSession: past this many events committed while the export was being made, the session
# is exported again under the writers' lock rather than the events read to see whether it changed.
ARCHIVE_RECHECK_EVENTS = 50_000


@dataclass(slots=True)
class RestoreResult:
    """What a restore wrote; `already_present` when the session was back already."""

    session: Node
    nodes: int = 0
    edges: int = 0
    events: int = 0
    skipped_edges: list[Edge] = field(default_factory=list)  # other end no longer exists
    skipped_events: int = 0  # below the retention floor, or no room in this log
    already_present: bool = False


class SessionArchive:
    def __init__(
        self, store: GraphStore, writer: Writer, hooks: GraphHooks, limits: Limits
    ) -> None:
        self.store = store
        self.writer = writer
        self.hooks = hooks
        self.limits = limits

    def candidates(
        self, *, older_than: int, limit: int, page_token: str
    ) -> tuple[list[Candidate], str]:
        """Sessions idle (or closed) since before `older_than` µs, oldest first, paged."""
        found, token = archive_candidates(
            self.store,
            older_than=older_than,
            limit=limit,
            page_token=page_token,
            max_bytes=page_bytes(self.limits.max_message_bytes),
        )
        if self.hooks.watches_reads:
            read = Read(
                "archive_candidates",
                options={"older_than": older_than, "limit": limit},
                session_ids=tuple(sorted(c.session.id for c in found)),
            )
            self.hooks.before_read(read)
            self.hooks.after_read(read, len(found))
        return found, token

    def _export(self, session_id: bytes) -> SessionExport:
        session = require_kind(self.store, session_id, NodeKind.SESSION)
        members = [node_id for _, node_id, _ in self.store.scan_session(session_id)]
        nodes = [n for n in self.store.get_nodes(members) if n is not None]
        edges: dict[EdgeKey, Edge] = {}
        for count, node in enumerate([session, *nodes]):
            if count % 64 == 0:
                deadline.check()
            for edge in self.store.edges(node.id, Direction.BOTH):
                edges[edge.key] = edge
        events = self.store.events.session_events(session_id)
        return SessionExport(session, nodes, list(edges.values()), events, self.store.events.log_id)

    def export_session(self, session_id: bytes) -> SessionExport:
        """The whole session — its nodes, every edge touching them, its retained events."""
        hooks = self.hooks
        read = Read("export_session", session_id=session_id)
        if hooks.watches_reads:
            hooks.before_read(read)
        export = self._export(session_id)
        if hooks.watches_reads:
            hooks.after_read(read, len(export.nodes) + 1)
        return export

    def export_for_archive(self, session_id: bytes) -> SessionExport:
        """`export_session` as the first step of archiving it (the archive hooks may refuse)."""
        self.hooks.before_archive(require_kind(self.store, session_id, NodeKind.SESSION))
        return self._export(session_id)

    def archive_session(
        self, session_id: bytes, *, content_sha256: str, undelivered_from: int | None = None
    ) -> SessionExport:
        """Remove a session that has been archived, with its history in the event log.

        Only while it still exports to `content_sha256` (what was shipped and verified): a
        session that changed since is kept, and the caller archives it again. With
        `undelivered_from` (the oldest event the registry reporter has not delivered), a
        session with undelivered reports is kept too. One SESSION_ARCHIVED event is recorded.

        The export is made and hashed before taking the writers' lock (for a large session
        that takes seconds, and every write would wait). Under the lock, the events committed
        since then tell whether anything the export holds may have changed; only if so is
        the session exported and checked again there."""
        seen, floor = self.store.events.last_sequence, self.store.events.floor()
        export = self._archivable(session_id, content_sha256, undelivered_from)
        with self.writer.transaction() as tx:
            # Gone since (a DeleteSession hid it meanwhile, which records no event): NotFound.
            require_kind(tx, session_id, NodeKind.SESSION)
            if self.store.events.floor() != floor or self._changed_since(export, seen):
                export = self._archivable(session_id, content_sha256, undelivered_from)
            for node in [*export.nodes, export.session]:
                tx.delete(node)
            for edge in self._edges_leaving(export):
                tx.delete_edge(edge)
            # The archive holds the session now: erase its history (trimmed entries included)
            # and keep a content-free marker so subscribers and the registry learn of it.
            tx.erase_history = True
            marker = replace(export.session, content="", metadata={})
            tx.events = [Event(0, EventType.SESSION_ARCHIVED, tx.time, session_id, node=marker)]
        self.hooks.after_archive(
            export.session,
            content_sha256=content_sha256,
            nodes=len(export.nodes),
            edges=len(export.edges),
            events=len(export.events),
        )
        return export

    def _edges_leaving(self, export: SessionExport) -> list[Edge]:
        """The edges that go with the session's nodes: those of its export, and while another
        session is being deleted, those between it and the session's routed nodes (hidden
        from the export). The deletion's steps remove the edges to every other node
        themselves, but once a routed node and its route are gone, nothing finds the edges
        that touched it."""
        if not self.store.sessions_being_deleted():
            return export.edges
        edges = {edge.key: edge for edge in export.edges}
        for node in export.nodes:
            if self.store.routed(node):
                edges.update((edge.key, edge) for edge in self.store.all_edges(node.id))
        return list(edges.values())

    def _archivable(
        self, session_id: bytes, content_sha256: str, undelivered_from: int | None
    ) -> SessionExport:
        """The session's export, if it may be archived: unchanged since the archive was made,
        with no report the registry still has to receive."""
        export = self._export(session_id)
        if export.sha256() != content_sha256:
            raise FailedPrecondition(
                f"session {format_id(session_id)} changed since it was exported; "
                "it was not deleted — archive it again"
            )
        if undelivered_from is not None and any(
            e.sequence >= undelivered_from for e in export.events
        ):
            raise FailedPrecondition(
                f"session {format_id(session_id)} has reports the LLM-Registry has not "
                "received yet; it was not deleted — archive it once they are delivered"
            )
        return export

    def _changed_since(self, export: SessionExport, sequence: int) -> bool:
        """Whether an event after `sequence` concerns the session, one of its nodes or an edge
        touching them. Another session's archival or restore counts too: those write without
        deriving events from their changes. Many events count as a change without reading
        them: the export under the lock costs less than reading them all."""
        last = self.store.events.last_sequence
        members = {node.id for node in export.nodes}
        members.add(export.session.id)
        first, looked = sequence + 1, 0
        while first <= last:
            if looked >= ARCHIVE_RECHECK_EVENTS:
                return True
            events = self.store.events.read(first, last, 1000)
            if not events:
                return False
            for event in events:
                if (
                    event.type.is_lifecycle
                    or event.session_id in members
                    or (event.node is not None and event.node.id in members)
                    or (
                        event.edge is not None
                        and (event.edge.source_id in members or event.edge.target_id in members)
                    )
                ):
                    return True
            looked += len(events)
            first = events[-1].sequence + 1
        return False

    def restore_session(self, export: SessionExport) -> RestoreResult:
        """Bring an exported session back with its ids, edges and (retained) events.

        The export is checked as live writes are, and touches nothing outside its session
        (see `graph.restore`). Restoring a session that exists and is identical to the
        export changes nothing; one that exists and differs is refused."""
        session_id = export.session.id
        check_export(export, self.limits)
        with self.writer.transaction() as tx:
            plan = plan_restore(export, self.store.get_nodes)
            if tx.get_node(session_id) is not None:
                # Compared with what a restore writes: events below the retention floor and
                # edges left out (their other end gone, or in another session) do not come
                # back, so they cannot be expected.
                retained = {e.sequence for e in self.store.events.session_events(session_id)}
                restorable = replace(
                    export,
                    edges=[
                        e
                        for e in plan.edges
                        if tx.get_node(e.source_id) is not None
                        and tx.get_node(e.target_id) is not None
                    ],
                    events=[e for e in export.events if e.sequence in retained],
                    log=self.store.events.log_id,
                )
                if self._export(session_id).encode() == restorable.encode():
                    return RestoreResult(export.session, already_present=True)
                raise AlreadyExists(
                    f"session {format_id(session_id)} exists and differs from the archive; "
                    "delete it first to restore the archived state"
                )
            nodes = [export.session, *export.nodes]
            ids = [n.id for n in nodes]
            readable = self.store.get_node_records(ids)
            if any(
                stored and record is None
                for stored, record in zip(self.store.nodes_stored(ids), readable, strict=True)
            ):
                raise FailedPrecondition(
                    f"session {format_id(session_id)} is being deleted; restore it once the "
                    "deletion has finished"
                )
            present = [n for n in self.store.get_nodes(ids) if n is not None]
            if present:
                raise AlreadyExists(
                    f"node {format_id(present[0].id)} of the archive already exists "
                    f"(in session {format_id(present[0].session_id or b'')} or as a global node)"
                )
            for node in nodes:
                tx.create(node)
            for edge in plan.edges:
                tx.create_edge(edge)
            # History comes back at its own sequence numbers, into the log it came from and
            # where that log has room (see EventLog.restorable).
            tx.restored_events = self.store.events.restorable(plan.events, export.log)
            tx.events = [
                Event(0, EventType.SESSION_RESTORED, tx.time, session_id, node=export.session)
            ]
        return RestoreResult(
            export.session,
            nodes=len(nodes),
            edges=len(plan.edges),
            events=len(tx.restored_events),
            skipped_edges=plan.skipped_edges,
            skipped_events=len(export.events) - len(tx.restored_events),
        )
