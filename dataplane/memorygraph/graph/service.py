"""The graph service: every operation on sessions, nodes, edges, templates and queries.

Writes run through the `Writer` (one transaction each, or batched for node creation) and the
rules of `graph.creation`; each passes the hook points of `GraphHooks` before its transaction
and after its change is durable. Reads take no lock and pass the read hooks. Templates live in
`graph.templates` (`GraphService.templates`), archival in `graph.archival`
(`GraphService.archive`). This module knows nothing of protobuf or RocksDB.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import replace
from typing import TypeVar

from memorygraph.codec.framing import unframe
from memorygraph.codec.nodes import decode_node, record_session_id
from memorygraph.errors import (
    AlreadyExists,
    FailedPrecondition,
    InvalidArgument,
    NotFound,
    OutOfRange,
    RequestError,
)
from memorygraph.graph import templates
from memorygraph.graph.archival import SessionArchive
from memorygraph.graph.checks import Limits, require, require_kind, writable_session
from memorygraph.graph.creation import Creator
from memorygraph.graph.deletion import SessionDeletion
from memorygraph.graph.hooks import GraphHooks, Read
from memorygraph.graph.peering import WorkerEndpoint
from memorygraph.graph.query import (
    Page,
    QueryFilter,
    RecordPage,
    get_nodes,
    list_sessions,
    page_bytes,
    run_query,
    stream_query,
)
from memorygraph.graph.templates import Templates
from memorygraph.graph.traverse import Traversal, traverse
from memorygraph.graph.tx import Transaction
from memorygraph.graph.writes import Writer
from memorygraph.model import (
    Direction,
    Edge,
    EdgeKind,
    IngestItem,
    NewEdge,
    NewNode,
    NewSession,
    Node,
    NodeKind,
    ResponseDetails,
    SessionDetails,
    SessionState,
    TemplateDetails,
    format_id,
)
from memorygraph.store import GraphCounts, GraphStore

__all__ = ["GraphService", "Limits"]

S = TypeVar("S")
T = TypeVar("T")
# Request errors that name the item of a batch they concern.
_ITEM_ERRORS = (InvalidArgument, NotFound, AlreadyExists, FailedPrecondition, OutOfRange)


def _sessions(ids: Iterable[bytes | None]) -> tuple[bytes, ...]:
    """The distinct sessions of what a read returns, in id order."""
    return tuple(sorted({i for i in ids if i is not None}))


def _now_micros() -> int:
    return time.time_ns() // 1000


def _named(item: str, create: Callable[[Transaction, S], T], tx: Transaction, spec: S) -> T:
    """`create(tx, spec)`, a refusal naming the item of a batch it concerns (when `item`)."""
    try:
        return create(tx, spec)
    except _ITEM_ERRORS as exc:
        if not item:
            raise
        raise _prefixed(exc, item) from None


def _hooked(item: str, hook: Callable[[S], S], spec: S) -> S:
    """`hook(spec)`, a plugin's refusal naming the item of a batch it concerns (when `item`)."""
    try:
        return hook(spec)
    except RequestError as exc:
        if not item:
            raise
        raise _prefixed(exc, item) from None


def _prefixed(exc: RequestError, item: str) -> RequestError:
    """`exc` with `item` in front of its message: the same class and attributes (code,
    plugin), whatever arguments the class takes."""
    named = type(exc).__new__(type(exc), f"{item}: {exc}")
    named.__dict__.update(exc.__dict__)
    return named


class GraphService:
    def __init__(
        self,
        store: GraphStore,
        *,
        limits: Limits = Limits(),
        clock: Callable[[], int] = _now_micros,
        hooks: GraphHooks | None = None,
    ) -> None:
        self.store = store
        self.limits = limits
        self.clock = clock
        self.hooks = hooks if hooks is not None else GraphHooks()
        self._writer = Writer(store, clock)
        self._create = Creator(limits, clock)
        # What the records of one page, batch or traversal may take.
        self._page_bytes = page_bytes(limits.max_message_bytes)
        self.archive = SessionArchive(store, self._writer, self.hooks, limits)
        self.deletion = SessionDeletion(store, self._writer)
        self.templates = Templates(store, self._writer, self._create, self.hooks, limits)
        self.endpoint = WorkerEndpoint(store, self._writer)

    # -- what the server reports about the graph -----------------------------------------------

    def idle_bound(self) -> int | None:
        """See `Writer.idle_bound` (for event watermarks)."""
        return self._writer.idle_bound()

    @property
    def schema_version(self) -> int:
        return self.store.schema_version

    def counts(self) -> GraphCounts:
        return self.store.counts()

    def size_bytes(self) -> int:
        return self.store.size_bytes()

    # -- reads -------------------------------------------------------------------------------

    def before_read(self, read: Read) -> None:
        """Let the read hooks refuse a read made outside this service (event streams)."""
        if self.hooks.watches_reads:
            self.hooks.before_read(read)

    def _answered(self, read: Read, returned: int) -> None:
        """Both read hooks for a read whose answer is in hand (point reads)."""
        self.hooks.before_read(read)
        self.hooks.after_read(read, returned)

    def has_node(self, node_id: bytes) -> bool:
        return self.store.get_node_record(node_id) is not None

    def session_of(self, node_id: bytes) -> bytes | None:
        """The session `node_id` belongs to; None for a global node or none at all (no read
        hooks: it gives new nodes their ids, and returns nothing to a caller)."""
        record = self.store.get_node_record(node_id)
        return record_session_id(record) if record is not None else None

    def require_session(self, session_id: bytes) -> None:
        """NotFound unless `session_id` is a session (no read hooks: nothing is returned)."""
        require_kind(self.store, session_id, NodeKind.SESSION)

    def get_node(self, node_id: bytes) -> Node:
        node = require(self.store.get_node(node_id), node_id)
        if self.hooks.watches_reads:
            self._answered(Read("get_node", node.session_id, (node_id,)), 1)
        return node

    def get_node_record(self, node_id: bytes) -> bytes:
        """The node as stored: a serialized `v1.Node`."""
        record = self.store.get_node_record(node_id)
        if record is None:
            raise NotFound(f"node {format_id(node_id)} not found")
        if self.hooks.watches_reads:
            session_id = decode_node(node_id, record).session_id
            self._answered(Read("get_node", session_id, (node_id,)), 1)
        return record

    def get_nodes(self, node_ids: list[bytes]) -> tuple[list[Node], list[bytes]]:
        """The nodes found (in the order asked) and the ids of those that were not; refused
        as soon as they take more than a response can carry."""
        found, missing = get_nodes(self.store, node_ids, max_bytes=self._page_bytes)
        if self.hooks.watches_reads:
            sessions = _sessions(node.session_id for node in found)
            session_id = sessions[0] if len(sessions) == 1 else None
            read = Read("batch_get_nodes", session_id, tuple(node_ids), session_ids=sessions)
            self._answered(read, len(found))
        return found, missing

    # -- sessions ----------------------------------------------------------------------------

    def create_session(self, spec: NewSession) -> Node:
        spec = self.hooks.before_create_session(spec)
        with self._writer.transaction() as tx:
            session = self._create.session(tx, spec)
        self.hooks.after_create_session(session)
        return session

    def get_session(self, session_id: bytes) -> Node:
        session = require_kind(self.store, session_id, NodeKind.SESSION)
        if self.hooks.watches_reads:
            self._answered(Read("get_session", session_id), 1)
        return session

    def close_session(self, session_id: bytes) -> Node:
        self.hooks.before_close_session(session_id)
        with self._writer.transaction() as tx:
            session = require_kind(tx, session_id, NodeKind.SESSION)
            details = session.details_as(SessionDetails)
            if details.state is SessionState.CLOSED:
                closed = session
            else:
                now = self.clock()
                closed = replace(
                    session,
                    update_time=now,
                    details=replace(details, state=SessionState.CLOSED, close_time=now),
                )
                tx.update(session, closed)
        self.hooks.after_close_session(closed)
        return closed

    def delete_session(self, session_id: bytes) -> tuple[int, int]:
        """Delete a session and everything in it; returns (nodes, edges) deleted. The session
        is gone from every read at once and deleted in steps (`graph.deletion`)."""
        self.hooks.before_delete_session(session_id)
        nodes, edges = self.deletion.delete(session_id)
        self.hooks.after_delete_session(session_id, nodes, edges)
        return nodes, edges

    def list_sessions(
        self, *, limit: int, page_token: str, state: SessionState | None, user_id: str
    ) -> Page:
        page = list_sessions(
            self.store,
            limit=limit,
            page_token=page_token,
            state=state,
            user_id=user_id,
            max_bytes=self._page_bytes,
        )
        if self.hooks.watches_reads:
            read = Read(
                "list_sessions",
                options={
                    "limit": limit,
                    "state": state.value if state else "",
                    "user_id": user_id,
                },
                session_ids=_sessions(node.id for node in page.nodes),
            )
            self._answered(read, len(page.nodes))
        return page

    # -- nodes -------------------------------------------------------------------------------

    def create_node(self, spec: NewNode) -> Node:
        return self.create_nodes([spec])[0]

    def create_nodes(self, specs: list[NewNode], names: list[str] | None = None) -> list[Node]:
        """Create every node (with its automatic edges) in one batch, or none. A refusal names
        the node it concerns: `names[i]` (default `requests[i]` when there are several)."""
        if not specs:
            raise InvalidArgument("at least one node is required")
        if names is None:
            names = [f"requests[{i}]" for i in range(len(specs))] if len(specs) > 1 else [""]
        hooks = self.hooks
        specs = [
            _hooked(name, hooks.before_create_node, spec)
            for name, spec in zip(names, specs, strict=True)
        ]
        nodes = self._writer.batched(lambda tx: self._created(tx, specs, names))
        for node in nodes:
            hooks.after_create_node(node)
        return nodes

    def _created(self, tx: Transaction, specs: list[NewNode], names: list[str]) -> list[Node]:
        """The nodes of `specs`, created in `tx` and encoded (their records are what the store
        writes and the response carries): refused before anything is written when the
        response could not carry them."""
        nodes = [
            _named(name, self._create.node, tx, spec)
            for name, spec in zip(names, specs, strict=True)
        ]
        self.limits.response(nodes)
        return nodes

    def ingest(self, items: list[IngestItem]) -> tuple[int, list[Node | Edge]]:
        """Apply a batch of sessions, nodes and edges atomically, in order; returns the
        sequence number of the batch's last event and what each item created."""
        if not items:
            raise InvalidArgument("an ingest batch needs at least one item")
        hooks = self.hooks
        prepared: list[IngestItem] = []
        for item in items:
            if isinstance(item, NewSession):
                prepared.append(hooks.before_create_session(item))
            elif isinstance(item, NewNode):
                prepared.append(hooks.before_create_node(item))
            else:
                prepared.append(hooks.before_create_edge(item))
        created: list[Node | Edge] = []
        with self._writer.transaction() as tx:
            for i, item in enumerate(prepared):
                created.append(_named(f"items[{i}]", self._create.item, tx, item))
        for thing in created:
            if isinstance(thing, Edge):
                hooks.after_create_edge(thing)
            elif thing.kind is NodeKind.SESSION:
                hooks.after_create_session(thing)
            else:
                hooks.after_create_node(thing)
        return tx.sequence, created

    def update_node(
        self, node_id: bytes, *, content: str | None, metadata: dict[str, str] | None
    ) -> Node:
        """Replace the content and/or metadata of a node (None leaves a field as it is)."""
        if self.hooks.watches_updates:  # plugins see the node as it is, then what is asked
            current = require(self.store.get_node(node_id), node_id)
            content, metadata = self.hooks.before_update_node(current, content, metadata)
        self.limits.check(content or "", metadata)
        with self._writer.transaction() as tx:
            node = require(tx.get_node(node_id), node_id)
            self._check_update(tx, node, content)
            updated = replace(
                node,
                content=node.content if content is None else content,
                metadata=dict(node.metadata) if metadata is None else dict(metadata),
                update_time=self.clock(),
            )
            tx.update(node, updated)
        self.hooks.after_update_node(updated)
        return updated

    @staticmethod
    def _check_update(tx: Transaction, node: Node, content: str | None) -> None:
        if node.kind is NodeKind.SESSION:
            raise InvalidArgument("sessions are changed with CloseSession, not UpdateNode")
        if node.session_id is not None:
            writable_session(tx, node.session_id)
        if content is None:
            return
        if not content.strip() and node.kind in (
            NodeKind.PROMPT,
            NodeKind.RESPONSE,
            NodeKind.TEMPLATE,
        ):
            raise InvalidArgument(f"content of a {node.kind} must not be empty")
        if isinstance(node.details, TemplateDetails):
            # New content must pass the checks CreateTemplate made (placeholders declared),
            # or instantiating the template would fail later.
            templates.validate_template(node.details.name, content, node.details.variables)

    def delete_node(self, node_id: bytes) -> int:
        """Delete a node and every edge touching it; returns the number of edges deleted."""
        current = self.store.get_node(node_id)
        if current is not None:
            self.hooks.before_delete_node(current)
        with self._writer.transaction() as tx:
            node = require(tx.get_node(node_id), node_id)
            if node.kind is NodeKind.SESSION:
                raise FailedPrecondition(
                    f"node {format_id(node_id)} is a session: delete it with DeleteSession, "
                    "which also deletes everything in it"
                )
            edges = self.store.all_edges(node_id)
            for edge in edges:
                tx.delete_edge(edge)
            if isinstance(node.details, ResponseDetails) and node.session_id is not None:
                session = tx.get_node(node.session_id)
                if session is not None:
                    totals = session.details_as(SessionDetails)
                    usage = totals.token_usage - node.details.token_usage
                    tx.update(session, replace(session, details=replace(totals, token_usage=usage)))
            tx.delete(node)
        if current is not None:
            self.hooks.after_delete_node(current, len(edges))
        return len(edges)

    # -- edges -------------------------------------------------------------------------------

    def create_edge(self, spec: NewEdge) -> Edge:
        spec = self.hooks.before_create_edge(spec)
        with self._writer.transaction() as tx:
            edge = self._create.edge(tx, spec)
        self.hooks.after_create_edge(edge)
        return edge

    def get_edges(self, node_id: bytes, direction: Direction, kinds: list[EdgeKind]) -> list[Edge]:
        node = require(self.store.get_node(node_id), node_id)
        read = Read(
            "get_edges",
            node.session_id,
            (node_id,),
            options={"direction": direction.value, "kinds": [k.value for k in kinds]},
        )
        if self.hooks.watches_reads:
            self.hooks.before_read(read)
        edges = list(self.store.edges(node_id, direction, kinds))
        if self.hooks.watches_reads:
            self.hooks.after_read(read, len(edges))
        return edges

    def delete_edge(self, source_id: bytes, target_id: bytes, kind: EdgeKind) -> None:
        self.hooks.before_delete_edge(Edge(source_id, target_id, kind))
        with self._writer.transaction() as tx:
            edge = tx.get_edge((source_id, kind, target_id))
            if edge is None:
                raise NotFound(
                    f"no {kind} edge from {format_id(source_id)} to {format_id(target_id)}"
                )
            tx.delete_edge(edge)
        self.hooks.after_delete_edge(Edge(source_id, target_id, kind))

    # -- queries -----------------------------------------------------------------------------

    def query(self, query: QueryFilter, *, limit: int, page_token: str) -> RecordPage:
        """A page of matching node records, framed (see `graph.query`)."""
        page = run_query(
            self.store, query, limit=limit, page_token=page_token, max_bytes=self._page_bytes
        )
        if self.hooks.watches_reads:
            sessions = _sessions(record_session_id(unframe(e)) for e in page.entries)
            read = Read(
                "query",
                query.session_id,
                query=query,
                options={"limit": limit},
                session_ids=sessions,
            )
            self._answered(read, len(page.entries))
        return page

    def stream_query(
        self, query: QueryFilter, *, batch_size: int, limit: int
    ) -> Iterator[list[bytes]]:
        """Every matching node record, framed, in batches (see `graph.query`)."""
        read = Read(
            "stream_query", query.session_id, query=query, options={"limit": limit, "stream": True}
        )
        watched = self.hooks.watches_reads
        if watched:
            self.hooks.before_read(read)
        returned = 0
        batches = stream_query(
            self.store, query, batch_size=batch_size, limit=limit, max_bytes=self._page_bytes
        )
        for batch in batches:
            returned += len(batch)
            yield batch
        if watched:
            self.hooks.after_read(read, returned)

    def traverse(
        self,
        start_id: bytes,
        *,
        edge_kinds: list[EdgeKind],
        direction: Direction,
        max_depth: int,
        max_nodes: int,
    ) -> Traversal:
        start = require(self.store.get_node(start_id), start_id)
        result = traverse(
            self.store,
            start,
            edge_kinds=edge_kinds,
            direction=direction,
            max_depth=max_depth,
            max_nodes=max_nodes,
            max_bytes=self._page_bytes,
        )
        if self.hooks.watches_reads:
            read = Read(
                "traverse",
                start.session_id,
                (start_id,),
                options={
                    "edge_kinds": [k.value for k in edge_kinds],
                    "direction": direction.value,
                    "max_depth": max_depth,
                    "max_nodes": max_nodes,
                },
                session_ids=_sessions(node.session_id for node, _ in result.nodes),
            )
            self._answered(read, len(result.nodes))
        return result
