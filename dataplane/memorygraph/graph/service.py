"""The graph rules: what each write means for sessions, nodes and edges.

Every write runs as one `Transaction` under the writer lock (reads of the graph state and the
write they lead to cannot interleave with another writer), then commits as one batch. Reads take
no lock. This module knows nothing of protobuf or RocksDB.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from typing import Any

from memorygraph import deadline
from memorygraph.errors import AlreadyExists, FailedPrecondition, InvalidArgument, NotFound
from memorygraph.graph import templates
from memorygraph.graph.batch import Batcher, Request
from memorygraph.graph.export import SessionExport
from memorygraph.graph.model import (
    Direction,
    Edge,
    EdgeKey,
    EdgeKind,
    Event,
    EventType,
    Node,
    NodeKind,
    SessionState,
)
from memorygraph.graph.query import (
    Candidate,
    Page,
    QueryFilter,
    RecordPage,
    archive_candidates,
    list_sessions,
    run_query,
    stream_query,
)
from memorygraph.graph.traverse import Traversal, traverse
from memorygraph.graph.tx import Transaction
from memorygraph.ids import format_id, new_id
from memorygraph.store import GraphStore

__all__ = [
    "GraphService",
    "IngestItem",
    "Limits",
    "NewEdge",
    "NewNode",
    "NewSession",
    "RestoreResult",
]

# ArchiveSession: past this many events committed while the export was being made, the session
# is exported again under the writers' lock rather than the events read to see whether it changed.
ARCHIVE_RECHECK_EVENTS = 50_000

# Attributes a caller may set per kind through CreateNode; anything else is the server's.
_SETTABLE_ATTRS: dict[NodeKind, frozenset[str]] = {
    NodeKind.PROMPT: frozenset({"model", "role", "template_id"}),
    NodeKind.RESPONSE: frozenset(
        {
            "prompt_id",
            "model",
            "prompt_tokens",
            "completion_tokens",
            "total_tokens",
            "finish_reason",
            "latency_ms",
        }
    ),
    NodeKind.TOOL_INVOCATION: frozenset(
        {"response_id", "tool_name", "arguments", "result", "status", "duration_ms"}
    ),
    NodeKind.AGENT: frozenset({"name", "description", "capabilities"}),
}


@dataclass(slots=True)
class NewSession:
    """A session to create; `session_id` None lets the server assign a UUIDv7."""

    session_id: bytes | None = None
    title: str = ""
    user_id: str = ""
    agent_id: str = ""
    model: str = ""
    metadata: dict[str, str] = field(default_factory=dict)


@dataclass(slots=True)
class NewEdge:
    source_id: bytes
    target_id: bytes
    kind: EdgeKind
    metadata: dict[str, str] = field(default_factory=dict)


@dataclass(slots=True)
class NewNode:
    """A node to create; `node_id` None lets the server assign a UUIDv7.

    `fresh_id` says `node_id` was made by `new_id()` ahead of time (Ingest names its nodes
    before creating them): no node can have it yet, so it is not looked up."""

    kind: NodeKind
    session_id: bytes | None = None
    content: str = ""
    metadata: dict[str, str] = field(default_factory=dict)
    attrs: dict[str, Any] = field(default_factory=dict)
    node_id: bytes | None = None
    fresh_id: bool = False


IngestItem = NewSession | NewNode | NewEdge


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


def _now_micros() -> int:
    return time.time_ns() // 1000


@dataclass(frozen=True, slots=True)
class Limits:
    """Size limits on what one node may hold (the gRPC message limit applies on top)."""

    max_content_bytes: int = 1 << 20
    max_metadata_bytes: int = 16 << 10

    def check(self, content: str = "", metadata: dict[str, str] | None = None) -> None:
        # UTF-8 takes at most 4 bytes a character: most content is clearly within the limit
        # without encoding it.
        if len(content) * 4 > self.max_content_bytes and (
            (size := len(content.encode())) > self.max_content_bytes
        ):
            raise InvalidArgument(
                f"content is {size} bytes; the limit is {self.max_content_bytes} bytes"
            )
        if metadata:
            if any(not key for key in metadata):
                raise InvalidArgument("metadata keys must not be empty")
            total = sum(len(k.encode()) + len(v.encode()) for k, v in metadata.items())
            if total > self.max_metadata_bytes:
                raise InvalidArgument(
                    f"metadata is {total} bytes; the limit is {self.max_metadata_bytes} bytes"
                )


def _checked(work: Callable[[Transaction], Any], tx: Transaction) -> Any:
    deadline.check()  # the wait for its turn may have used up the caller's time
    return work(tx)


class GraphService:
    def __init__(
        self,
        store: GraphStore,
        *,
        limits: Limits = Limits(),
        clock: Callable[[], int] = _now_micros,
    ) -> None:
        self.store = store
        self.limits = limits
        self.clock = clock
        self._write_lock = threading.Lock()
        # Node creation (the write every turn makes) goes through the batcher: concurrent
        # requests share one transaction, one write and one sync.
        self._batcher = Batcher(self._apply_batch, store.wait_durable)

    @contextmanager
    def _transaction(self) -> Iterator[Transaction]:
        with self._write_lock:
            deadline.check()  # the wait for the lock may have used up the caller's time
            tx = Transaction(self.store, self.clock())
            yield tx
            ticket = self.store.stage(tx.changes())
            tx.sequence = self.store.last_sequence
        # Outside the lock, so that other writers join the same group commit.
        self.store.wait_durable(ticket)

    def _apply_batch(self, requests: list[Request]) -> int:
        """Each request's work in a nested transaction of one shared transaction, kept only
        if it succeeds; then the whole batch staged as one write."""
        with self._write_lock:
            tx = Transaction(self.store, self.clock())
            for request in requests:
                nested = tx.nested()
                try:
                    request.outcome = request.context.run(_checked, request.work, nested)
                except Exception as exc:
                    request.failure = exc
                else:
                    nested.merge()
            if all(request.failure is not None for request in requests):
                return 0
            return self.store.stage(tx.changes())

    # -- lookups -----------------------------------------------------------------------------

    @staticmethod
    def _require(node: Node | None, node_id: bytes, what: str = "node") -> Node:
        if node is None:
            raise NotFound(f"{what} {format_id(node_id)} not found")
        return node

    def _require_kind(self, tx: Transaction | None, node_id: bytes, kind: NodeKind) -> Node:
        node = tx.get_node(node_id) if tx else self.store.get_node(node_id)
        if node is not None and node.kind is kind:
            return node
        label = kind.replace("_", " ")
        node = self._require(node, node_id, label)
        raise NotFound(f"{label} {format_id(node_id)} not found (that id is a {node.kind})")

    def _writable_session(self, tx: Transaction, session_id: bytes) -> Node:
        session = self._require_kind(tx, session_id, NodeKind.SESSION)
        if session.attrs["state"] != SessionState.ACTIVE:
            raise FailedPrecondition(
                f"session {format_id(session_id)} is closed; create a new session to record "
                "more turns"
            )
        return session

    def get_node(self, node_id: bytes) -> Node:
        return self._require(self.store.get_node(node_id), node_id)

    def get_node_record(self, node_id: bytes) -> bytes:
        """The node as stored: a serialized `v1.Node`."""
        record = self.store.get_node_record(node_id)
        if record is None:
            raise NotFound(f"node {format_id(node_id)} not found")
        return record

    def get_nodes(self, node_ids: list[bytes]) -> tuple[list[Node], list[bytes]]:
        found, missing = [], []
        for node_id, node in zip(node_ids, self.store.get_nodes(node_ids), strict=True):
            if node is None:
                missing.append(node_id)
            else:
                found.append(node)
        return found, missing

    # -- sessions ----------------------------------------------------------------------------

    def create_session(self, spec: NewSession) -> Node:
        with self._transaction() as tx:
            return self._create_session_in(tx, spec)

    def _create_session_in(self, tx: Transaction, spec: NewSession) -> Node:
        self.limits.check(spec.title, spec.metadata)
        node_id = spec.session_id or new_id()
        if tx.get_node(node_id) is not None:
            raise AlreadyExists(f"a node with id {format_id(node_id)} already exists")
        now = self.clock()
        session = Node(
            id=node_id,
            kind=NodeKind.SESSION,
            session_id=node_id,
            content=spec.title,
            metadata=dict(spec.metadata),
            create_time=now,
            update_time=now,
            attrs={
                "state": SessionState.ACTIVE.value,
                "user_id": spec.user_id,
                "agent_id": spec.agent_id,
                "model": spec.model,
                "close_time": 0,
                "prompt_tokens": 0,
                "completion_tokens": 0,
                "total_tokens": 0,
            },
        )
        tx.create(session)
        return session

    def get_session(self, session_id: bytes) -> Node:
        return self._require_kind(None, session_id, NodeKind.SESSION)

    def close_session(self, session_id: bytes) -> Node:
        with self._transaction() as tx:
            session = self._require_kind(tx, session_id, NodeKind.SESSION)
            if session.attrs["state"] == SessionState.CLOSED:
                return session
            now = self.clock()
            closed = replace(
                session,
                update_time=now,
                attrs={**session.attrs, "state": SessionState.CLOSED.value, "close_time": now},
            )
            tx.update(session, closed)
        return closed

    def delete_session(self, session_id: bytes) -> tuple[int, int]:
        """Delete a session and everything in it; returns (nodes, edges) deleted."""
        with self._transaction() as tx:
            session = self._require_kind(tx, session_id, NodeKind.SESSION)
            members = [node_id for _, node_id, _ in self.store.scan_session(session_id)]
            nodes = [n for n in self.store.get_nodes(members) if n is not None]
            edges: dict[EdgeKey, Edge] = {}
            for count, node in enumerate([*nodes, session]):
                if count % 16 == 0:
                    deadline.check()
                for edge in self.store.edges(node.id, Direction.BOTH):
                    edges[edge.key] = edge
                tx.delete(node)
            for edge in edges.values():
                tx.delete_edge(edge)
        return len(nodes) + 1, len(edges)

    def list_sessions(
        self, *, limit: int, page_token: str, state: SessionState | None, user_id: str
    ) -> Page:
        return list_sessions(
            self.store, limit=limit, page_token=page_token, state=state, user_id=user_id
        )

    # -- nodes -------------------------------------------------------------------------------

    def create_node(self, spec: NewNode) -> Node:
        return self.create_nodes([spec])[0]

    def create_nodes(self, specs: list[NewNode]) -> list[Node]:
        """Create every node (with its automatic edges) in one batch, or none."""
        if not specs:
            raise InvalidArgument("at least one node is required")
        many = len(specs) > 1
        nodes: list[Node] = self._batcher.submit(
            lambda tx: [
                self._create_in(tx, spec, index=i if many else None) for i, spec in enumerate(specs)
            ]
        )
        return nodes

    def _create_in(self, tx: Transaction, spec: NewNode, index: int | None = None) -> Node:
        where = f"requests[{index}]: " if index is not None else ""
        try:
            return self._create_checked(tx, spec)
        except (InvalidArgument, NotFound, AlreadyExists, FailedPrecondition) as exc:
            if not where:
                raise
            raise type(exc)(where + str(exc)) from None

    def ingest(self, items: list[IngestItem]) -> tuple[int, list[Node | Edge]]:
        """Apply a batch of sessions, nodes and edges atomically, in order; returns the
        sequence number of the batch's last event and what each item created."""
        if not items:
            raise InvalidArgument("an ingest batch needs at least one item")
        created: list[Node | Edge] = []
        with self._transaction() as tx:
            for i, item in enumerate(items):
                try:
                    if isinstance(item, NewSession):
                        created.append(self._create_session_in(tx, item))
                    elif isinstance(item, NewNode):
                        created.append(self._create_checked(tx, item))
                    else:
                        created.append(self._create_edge_in(tx, item))
                except (InvalidArgument, NotFound, AlreadyExists, FailedPrecondition) as exc:
                    raise type(exc)(f"items[{i}]: {exc}") from None
        return tx.sequence, created

    def _create_checked(self, tx: Transaction, spec: NewNode) -> Node:
        kind = spec.kind
        if kind is NodeKind.SESSION:
            raise InvalidArgument("sessions are created with CreateSession, not CreateNode")
        if kind is NodeKind.TEMPLATE:
            raise InvalidArgument("templates are created with CreateTemplate, not CreateNode")
        if not _SETTABLE_ATTRS[kind].issuperset(spec.attrs):
            unknown = set(spec.attrs) - _SETTABLE_ATTRS[kind]
            raise InvalidArgument(f"{kind} nodes have no fields {', '.join(sorted(unknown))}")
        self.limits.check(spec.content, spec.metadata)
        if kind in (NodeKind.PROMPT, NodeKind.RESPONSE) and (
            not spec.content or spec.content.isspace()
        ):
            raise InvalidArgument(f"content is required for a {kind}")
        if kind is NodeKind.TOOL_INVOCATION and not spec.attrs.get("tool_name"):
            raise InvalidArgument("tool_name is required for a tool invocation")
        # A new UUIDv7 (62 random bits, past every id this process made): no node has it,
        # so no lookup to prove it. Only a caller's own id is checked.
        node_id = spec.node_id
        if node_id is None:
            node_id = new_id()
        elif not spec.fresh_id and tx.get_node(node_id) is not None:
            raise AlreadyExists(f"a node with id {format_id(node_id)} already exists")

        attrs = dict(spec.attrs)
        session_id = spec.session_id
        edges: list[tuple[EdgeKind, bytes]] = []
        if kind is NodeKind.AGENT:
            if session_id is not None:
                raise InvalidArgument("agents are global nodes: leave session_id empty")
        elif kind is NodeKind.RESPONSE and attrs.get("prompt_id"):
            prompt = self._require_kind(tx, attrs["prompt_id"], NodeKind.PROMPT)
            session_id = self._same_session(session_id, prompt)
            attrs["prompt_id"] = format_id(prompt.id)
            edges.append((EdgeKind.RESPONDS_TO, prompt.id))
        elif kind is NodeKind.TOOL_INVOCATION and attrs.get("response_id"):
            response = self._require_kind(tx, attrs["response_id"], NodeKind.RESPONSE)
            session_id = self._same_session(session_id, response)
            attrs["response_id"] = format_id(response.id)
            edges.append((EdgeKind.INVOKES, response.id))
        if kind is NodeKind.PROMPT and attrs.get("template_id"):
            template = self._require_kind(tx, attrs["template_id"], NodeKind.TEMPLATE)
            attrs["template_id"] = format_id(template.id)
            edges.append((EdgeKind.INSTANTIATES, template.id))
        if not kind.is_global:
            if session_id is None:
                raise InvalidArgument(f"session_id is required for a {kind}")
            session = self._writable_session(tx, session_id)
            if kind is NodeKind.PROMPT:
                edges.append((EdgeKind.BELONGS_TO, session.id))
                previous = tx.last_prompt(session.id)
                if previous is not None:
                    edges.append((EdgeKind.FOLLOWS, previous))
            if kind is NodeKind.RESPONSE:
                usage = {
                    k: int(attrs.get(k, 0))
                    for k in ("prompt_tokens", "completion_tokens", "total_tokens")
                }
                if min(usage.values()) < 0:
                    raise InvalidArgument("token counts must not be negative")
                if not usage["total_tokens"]:
                    usage["total_tokens"] = usage["prompt_tokens"] + usage["completion_tokens"]
                attrs.update(usage)
                totals = {k: session.attrs[k] + v for k, v in usage.items()}
                tx.update(session, replace(session, attrs={**session.attrs, **totals}))

        now = self.clock()
        node = Node(
            id=node_id,
            kind=kind,
            session_id=session_id,
            content=spec.content,
            metadata=dict(spec.metadata),
            create_time=now,
            update_time=now,
            attrs=attrs,
        )
        tx.create(node)
        for edge_kind, target in edges:
            tx.create_edge(Edge(node_id, target, edge_kind, {}, now))
        return node

    @staticmethod
    def _same_session(session_id: bytes | None, parent: Node) -> bytes | None:
        if session_id is not None and parent.session_id != session_id:
            raise InvalidArgument(
                f"{parent.kind} {format_id(parent.id)} belongs to another session than "
                f"session_id {format_id(session_id)}"
            )
        return parent.session_id

    def update_node(
        self, node_id: bytes, *, content: str | None, metadata: dict[str, str] | None
    ) -> Node:
        """Replace the content and/or metadata of a node (None leaves a field as it is)."""
        self.limits.check(content or "", metadata)
        with self._transaction() as tx:
            node = self._require(tx.get_node(node_id), node_id)
            if node.kind is NodeKind.SESSION:
                raise InvalidArgument("sessions are changed with CloseSession, not UpdateNode")
            if node.session_id is not None:
                self._writable_session(tx, node.session_id)
            if (
                content is not None
                and not content.strip()
                and node.kind in (NodeKind.PROMPT, NodeKind.RESPONSE, NodeKind.TEMPLATE)
            ):
                raise InvalidArgument(f"content of a {node.kind} must not be empty")
            if content is not None and node.kind is NodeKind.TEMPLATE:
                # New content must pass the checks CreateTemplate made (placeholders declared),
                # or instantiating the template would fail later.
                variables = [
                    templates.TemplateVariable.from_dict(v) for v in node.attrs["variables"]
                ]
                templates.validate_template(node.attrs["name"], content, variables)
            updated = replace(
                node,
                content=node.content if content is None else content,
                metadata=dict(node.metadata) if metadata is None else dict(metadata),
                update_time=self.clock(),
            )
            tx.update(node, updated)
        return updated

    def delete_node(self, node_id: bytes) -> int:
        """Delete a node and every edge touching it; returns the number of edges deleted."""
        with self._transaction() as tx:
            node = self._require(tx.get_node(node_id), node_id)
            if node.kind is NodeKind.SESSION:
                raise FailedPrecondition(
                    f"node {format_id(node_id)} is a session: delete it with DeleteSession, "
                    "which also deletes everything in it"
                )
            edges = list(self.store.edges(node_id, Direction.BOTH))
            for edge in edges:
                tx.delete_edge(edge)
            if node.kind is NodeKind.RESPONSE and node.session_id is not None:
                session = tx.get_node(node.session_id)
                if session is not None:
                    totals = {
                        k: session.attrs[k] - int(node.attrs.get(k, 0))
                        for k in ("prompt_tokens", "completion_tokens", "total_tokens")
                    }
                    tx.update(session, replace(session, attrs={**session.attrs, **totals}))
            tx.delete(node)
        return len(edges)

    # -- edges -------------------------------------------------------------------------------

    def create_edge(self, spec: NewEdge) -> Edge:
        with self._transaction() as tx:
            return self._create_edge_in(tx, spec)

    def _create_edge_in(self, tx: Transaction, spec: NewEdge) -> Edge:
        source_id, target_id, kind = spec.source_id, spec.target_id, spec.kind
        self.limits.check(metadata=spec.metadata)
        if source_id == target_id:
            raise InvalidArgument("an edge cannot connect a node to itself")
        source = self._require(tx.get_node(source_id), source_id, "source node")
        self._require(tx.get_node(target_id), target_id, "target node")
        if source.session_id is not None:
            self._writable_session(tx, source.session_id)
        if tx.get_edge((source_id, kind, target_id)) is not None:
            raise AlreadyExists(
                f"a {kind} edge from {format_id(source_id)} to {format_id(target_id)} "
                "already exists"
            )
        edge = Edge(source_id, target_id, kind, dict(spec.metadata), self.clock())
        tx.create_edge(edge)
        return edge

    def get_edges(self, node_id: bytes, direction: Direction, kinds: list[EdgeKind]) -> list[Edge]:
        self.get_node(node_id)
        return list(self.store.edges(node_id, direction, kinds))

    def delete_edge(self, source_id: bytes, target_id: bytes, kind: EdgeKind) -> None:
        with self._transaction() as tx:
            edge = tx.get_edge((source_id, kind, target_id))
            if edge is None:
                raise NotFound(
                    f"no {kind} edge from {format_id(source_id)} to {format_id(target_id)}"
                )
            tx.delete_edge(edge)

    # -- templates ---------------------------------------------------------------------------

    def create_template(
        self,
        *,
        name: str,
        content: str,
        variables: list[templates.TemplateVariable],
        metadata: dict[str, str],
        template_id: bytes | None = None,
    ) -> Node:
        templates.validate_template(name, content, variables)
        self.limits.check(content, metadata)
        with self._transaction() as tx:
            node_id = template_id or new_id()
            if tx.get_node(node_id) is not None:
                raise AlreadyExists(f"a node with id {format_id(node_id)} already exists")
            if self.store.template_id(name) is not None:
                raise AlreadyExists(f"a template named {name!r} already exists")
            now = self.clock()
            node = Node(
                id=node_id,
                kind=NodeKind.TEMPLATE,
                session_id=None,
                content=content,
                metadata=dict(metadata),
                create_time=now,
                update_time=now,
                attrs={
                    "name": name,
                    "variables": [v.to_dict() for v in variables],
                    "usage_count": 0,
                },
            )
            tx.create(node)
        return node

    def get_template(self, *, template_id: bytes | None = None, name: str = "") -> Node:
        if template_id is None:
            if not name:
                raise InvalidArgument("template_id or name is required")
            found = self.store.template_id(name)
            if found is None:
                raise NotFound(f"template named {name!r} not found")
            template_id = found
        return self._require_kind(None, template_id, NodeKind.TEMPLATE)

    def instantiate_template(
        self,
        *,
        template_id: bytes | None,
        name: str,
        values: dict[str, str],
        session_id: bytes | None,
        prompt_attrs: dict[str, Any],
        metadata: dict[str, str],
    ) -> tuple[str, Node | None]:
        """Render a template; with a session, also record the text as a prompt there."""
        template, content = self.render_template(template_id=template_id, name=name, values=values)
        prompt = self.record_instantiation(
            template, content, session_id=session_id, prompt_attrs=prompt_attrs, metadata=metadata
        )
        return content, prompt

    def render_template(
        self, *, template_id: bytes | None, name: str, values: dict[str, str]
    ) -> tuple[Node, str]:
        """The template and its text with `values` filled in; nothing is written."""
        template = self.get_template(template_id=template_id, name=name)
        variables = [templates.TemplateVariable.from_dict(v) for v in template.attrs["variables"]]
        return template, templates.render_template(template.content, variables, values)

    def record_instantiation(
        self,
        template: Node,
        content: str,
        *,
        session_id: bytes | None,
        prompt_attrs: dict[str, Any],
        metadata: dict[str, str],
    ) -> Node | None:
        """Count one use of `template`; with a session, record `content` as a prompt there."""
        with self._transaction() as tx:
            current = self._require_kind(tx, template.id, NodeKind.TEMPLATE)
            counted = replace(
                current,
                attrs={**current.attrs, "usage_count": current.attrs["usage_count"] + 1},
            )
            tx.update(current, counted)
            prompt = None
            if session_id is not None:
                prompt = self._create_checked(
                    tx,
                    NewNode(
                        NodeKind.PROMPT,
                        session_id,
                        content,
                        metadata,
                        {**prompt_attrs, "template_id": template.id},
                    ),
                )
        return prompt

    # -- queries -----------------------------------------------------------------------------

    def query(self, query: QueryFilter, *, limit: int, page_token: str) -> RecordPage:
        """A page of matching node records (see `graph.query`)."""
        return run_query(self.store, query, limit=limit, page_token=page_token)

    def stream_query(
        self, query: QueryFilter, *, batch_size: int, limit: int
    ) -> Iterator[list[bytes]]:
        return stream_query(self.store, query, batch_size=batch_size, limit=limit)

    def traverse(
        self,
        start_id: bytes,
        *,
        edge_kinds: list[EdgeKind],
        direction: Direction,
        max_depth: int,
        max_nodes: int,
    ) -> Traversal:
        start = self.get_node(start_id)
        return traverse(
            self.store,
            start,
            edge_kinds=edge_kinds,
            direction=direction,
            max_depth=max_depth,
            max_nodes=max_nodes,
        )

    # -- archival ----------------------------------------------------------------------------

    def archive_candidates(
        self, *, older_than: int, limit: int, page_token: str
    ) -> tuple[list[Candidate], str]:
        return archive_candidates(
            self.store, older_than=older_than, limit=limit, page_token=page_token
        )

    def export_session(self, session_id: bytes) -> SessionExport:
        """The whole session — its nodes, every edge touching them, its retained events."""
        session = self._require_kind(None, session_id, NodeKind.SESSION)
        members = [node_id for _, node_id, _ in self.store.scan_session(session_id)]
        nodes = [n for n in self.store.get_nodes(members) if n is not None]
        edges: dict[EdgeKey, Edge] = {}
        for count, node in enumerate([session, *nodes]):
            if count % 64 == 0:
                deadline.check()
            for edge in self.store.edges(node.id, Direction.BOTH):
                edges[edge.key] = edge
        events = self.store.session_events(session_id)
        return SessionExport(session, nodes, list(edges.values()), events, self.store.log_id)

    def export_for_archive(self, session_id: bytes) -> SessionExport:
        """`export_session` as the first step of archiving it (plugins may refuse that)."""
        return self.export_session(session_id)

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
        seen, floor = self.store.last_sequence, self.store.event_floor()
        export = self._archivable(session_id, content_sha256, undelivered_from)
        with self._transaction() as tx:
            if self.store.event_floor() != floor or self._changed_since(export, seen):
                export = self._archivable(session_id, content_sha256, undelivered_from)
            for node in [*export.nodes, export.session]:
                tx.delete(node)
            for edge in export.edges:
                tx.delete_edge(edge)
            # The archive holds the session now: erase its history (trimmed entries included)
            # and keep a content-free marker so subscribers and the registry learn of it.
            tx.erase_history = True
            marker = replace(export.session, content="", metadata={})
            tx.events = [Event(0, EventType.SESSION_ARCHIVED, tx.time, session_id, node=marker)]
        return export

    def _archivable(
        self, session_id: bytes, content_sha256: str, undelivered_from: int | None
    ) -> SessionExport:
        """The session's export, if it may be archived: unchanged since the archive was made,
        with no report the registry still has to receive."""
        export = self.export_session(session_id)
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
        last = self.store.last_sequence
        if last - sequence > ARCHIVE_RECHECK_EVENTS:
            return True
        members = {node.id for node in export.nodes}
        members.add(export.session.id)
        first = sequence + 1
        while first <= last:
            events = self.store.read_events(first, last, 1000)
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
            if not events:
                return False
            first = events[-1].sequence + 1
        return False

    def restore_session(self, export: SessionExport) -> RestoreResult:
        """Bring an exported session back with its ids, edges and (retained) events.

        Restoring a session that exists and is identical to the export changes nothing;
        one that exists and differs is refused."""
        session_id = export.session.id
        with self._transaction() as tx:
            if tx.get_node(session_id) is not None:
                # Compared with what a restore writes: events below the retention floor and
                # edges to nodes gone since do not come back, so they cannot be expected.
                retained = {e.sequence for e in self.store.session_events(session_id)}
                restorable = replace(
                    export,
                    edges=[
                        e
                        for e in export.edges
                        if tx.get_node(e.source_id) is not None
                        and tx.get_node(e.target_id) is not None
                    ],
                    events=[e for e in export.events if e.sequence in retained],
                    log=self.store.log_id,
                )
                if self.export_session(session_id).encode() == restorable.encode():
                    return RestoreResult(export.session, already_present=True)
                raise AlreadyExists(
                    f"session {format_id(session_id)} exists and differs from the archive; "
                    "delete it first to restore the archived state"
                )
            nodes = [export.session, *export.nodes]
            present = [n for n in self.store.get_nodes([n.id for n in nodes]) if n is not None]
            if present:
                raise AlreadyExists(
                    f"node {format_id(present[0].id)} of the archive already exists "
                    f"(in session {format_id(present[0].session_id or b'')} or as a global node)"
                )
            for node in nodes:
                tx.create(node)
            own = {n.id for n in nodes}
            skipped: list[Edge] = []
            others = {
                end for e in export.edges for end in (e.source_id, e.target_id) if end not in own
            }
            missing = {
                nid
                for nid, node in zip(others, self.store.get_nodes(list(others)), strict=True)
                if node is None
            }
            for edge in export.edges:
                if edge.source_id in missing or edge.target_id in missing:
                    skipped.append(edge)
                else:
                    tx.create_edge(edge)
            # History comes back at its own sequence numbers, into the log it came from and
            # where that log has room (see GraphStore.restorable_events).
            tx.restored_events = self.store.restorable_events(export.events, export.log)
            tx.events = [
                Event(0, EventType.SESSION_RESTORED, tx.time, session_id, node=export.session)
            ]
        return RestoreResult(
            export.session,
            nodes=len(nodes),
            edges=len(export.edges) - len(skipped),
            events=len(tx.restored_events),
            skipped_edges=skipped,
            skipped_events=len(export.events) - len(tx.restored_events),
        )
