"""What creating a session, a node or an edge means for the graph, inside a transaction.

The rules for new things, shared by every way of making them (CreateSession, CreateNode and
its batch, the turn RPCs, Ingest, InstantiateTemplate): what each kind requires, the automatic
edges (belongs_to, follows, responds_to, invokes, instantiates) and the session's token totals.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace

from memorygraph.errors import AlreadyExists, InvalidArgument, OutOfRange
from memorygraph.graph.checks import Limits, require, require_kind, writable_session
from memorygraph.graph.limits import INT64_MAX
from memorygraph.graph.tx import Transaction
from memorygraph.model import (
    Edge,
    EdgeKind,
    IngestItem,
    NewEdge,
    NewNode,
    NewSession,
    Node,
    NodeDetails,
    NodeKind,
    PromptDetails,
    ResponseDetails,
    SessionDetails,
    ToolInvocationDetails,
    format_id,
    id_tag,
    new_id,
)
from memorygraph.model.details import DETAILS_TYPES, KINDS_OF_DETAILS

__all__ = ["Creator"]

# The kinds whose nodes need content, and the one a tool invocation needs instead.
_NEED_CONTENT = (NodeKind.PROMPT, NodeKind.RESPONSE)


@dataclass(frozen=True, slots=True)
class Creator:
    limits: Limits
    clock: Callable[[], int]  # microseconds; each new thing is stamped when it is made

    def session(self, tx: Transaction, spec: NewSession) -> Node:
        self.limits.session(spec)
        node_id = spec.session_id or new_id(tx.store.new_tag())
        if tx.id_taken(node_id):
            raise AlreadyExists(f"a node with id {format_id(node_id)} already exists")
        details = SessionDetails(user_id=spec.user_id, agent_id=spec.agent_id, model=spec.model)
        return self.stamped(tx, node_id, node_id, spec.title, spec.metadata, details)

    def stamped(
        self,
        tx: Transaction,
        node_id: bytes,
        session_id: bytes | None,
        content: str,
        metadata: dict[str, str],
        details: NodeDetails,
    ) -> Node:
        """A new node created now in `tx`, its kind that of its details."""
        now = self.clock()
        node = Node(
            id=node_id,
            kind=KINDS_OF_DETAILS[type(details)],
            session_id=session_id,
            content=content,
            metadata=dict(metadata),
            create_time=now,
            update_time=now,
            details=details,
        )
        tx.create(node)
        return node

    def node(self, tx: Transaction, spec: NewNode) -> Node:
        """The node `spec` asks for, with its automatic edges, created in `tx`."""
        details = self._checked_details(spec)
        node_id = spec.node_id
        if node_id is not None and not spec.fresh_id and tx.id_taken(node_id):
            raise AlreadyExists(f"a node with id {format_id(node_id)} already exists")
        session_id, edges = self._parents(tx, spec, details)
        if not spec.kind.is_global:
            if session_id is None:
                raise InvalidArgument(f"session_id is required for a {spec.kind}")
            details = self._join_session(tx, writable_session(tx, session_id), details, edges)
        if node_id is None:
            # A new id (past every id this process made, 46 random bits): no node has it, so
            # no lookup proves it. It carries its session's shard tag; a global node's is its own
            # (on a shard of this worker's, when the store is one worker's).
            tag = id_tag(session_id) if session_id is not None else tx.store.new_tag()
            node_id = new_id(tag)
        node = self.stamped(tx, node_id, session_id, spec.content, spec.metadata, details)
        for edge_kind, target in edges:
            tx.create_edge(Edge(node_id, target, edge_kind, {}, node.create_time))
        return node

    def _checked_details(self, spec: NewNode) -> NodeDetails:
        """The spec's details, once what its kind requires is there."""
        kind = spec.kind
        if kind is NodeKind.SESSION:
            raise InvalidArgument("sessions are created with CreateSession, not CreateNode")
        if kind is NodeKind.TEMPLATE:
            raise InvalidArgument("templates are created with CreateTemplate, not CreateNode")
        details = spec.given_details
        if type(details) is not DETAILS_TYPES[kind]:
            raise InvalidArgument(f"{type(details).__name__} does not fit a node of kind {kind}")
        self.limits.check(spec.content, spec.metadata)
        self.limits.details(details)
        if kind in _NEED_CONTENT and (not spec.content or spec.content.isspace()):
            raise InvalidArgument(f"content is required for a {kind}")
        if isinstance(details, ToolInvocationDetails) and not details.tool_name:
            raise InvalidArgument("tool_name is required for a tool invocation")
        return details

    @staticmethod
    def _parents(
        tx: Transaction, spec: NewNode, details: NodeDetails
    ) -> tuple[bytes | None, list[tuple[EdgeKind, bytes]]]:
        """The session the node lands in (its parent's, when it names one) and the edges to
        its parent and template."""
        session_id = spec.session_id
        edges: list[tuple[EdgeKind, bytes]] = []
        parent: Node | None = None
        if spec.kind is NodeKind.AGENT:
            if session_id is not None:
                raise InvalidArgument("agents are global nodes: leave session_id empty")
        elif isinstance(details, ResponseDetails) and details.prompt_id is not None:
            parent = require_kind(tx, details.prompt_id, NodeKind.PROMPT)
            edges.append((EdgeKind.RESPONDS_TO, parent.id))
        elif isinstance(details, ToolInvocationDetails) and details.response_id is not None:
            parent = require_kind(tx, details.response_id, NodeKind.RESPONSE)
            edges.append((EdgeKind.INVOKES, parent.id))
        if parent is not None:
            if session_id is not None and parent.session_id != session_id:
                raise InvalidArgument(
                    f"{parent.kind} {format_id(parent.id)} belongs to another session than "
                    f"session_id {format_id(session_id)}"
                )
            session_id = parent.session_id
        if isinstance(details, PromptDetails) and details.template_id is not None:
            template = require_kind(tx, details.template_id, NodeKind.TEMPLATE)
            edges.append((EdgeKind.INSTANTIATES, template.id))
        return session_id, edges

    def _join_session(
        self,
        tx: Transaction,
        session: Node,
        details: NodeDetails,
        edges: list[tuple[EdgeKind, bytes]],
    ) -> NodeDetails:
        """What a node means for its session: a prompt follows the previous one; a response's
        tokens add to the session's totals. Returns the node's details as they are stored."""
        if isinstance(details, PromptDetails):
            edges.append((EdgeKind.BELONGS_TO, session.id))
            previous = tx.last_prompt(session.id)
            if previous is not None:
                edges.append((EdgeKind.FOLLOWS, previous))
        elif isinstance(details, ResponseDetails):
            self.limits.tokens(details.token_usage, self.limits.max_tokens)
            details = replace(details, token_usage=details.token_usage.with_total())
            totals = session.details_as(SessionDetails)
            usage = totals.token_usage + details.token_usage
            if max(usage.prompt_tokens, usage.completion_tokens, usage.total_tokens) > INT64_MAX:
                raise OutOfRange(
                    f"the token totals of session {format_id(session.id)} would pass "
                    f"{INT64_MAX}, the most a total holds; record further responses in a new "
                    "session"
                )
            tx.update(session, replace(session, details=replace(totals, token_usage=usage)))
        return details

    def item(self, tx: Transaction, item: IngestItem) -> Node | Edge:
        """Whatever `item` asks for (an Ingest batch mixes sessions, nodes and edges)."""
        if isinstance(item, NewSession):
            return self.session(tx, item)
        if isinstance(item, NewNode):
            return self.node(tx, item)
        return self.edge(tx, item)

    def edge(self, tx: Transaction, spec: NewEdge) -> Edge:
        source_id, target_id, kind = spec.source_id, spec.target_id, spec.kind
        self.limits.check(metadata=spec.metadata)
        if source_id == target_id:
            raise InvalidArgument("an edge cannot connect a node to itself")
        source = require(tx.get_node(source_id), source_id, "source node")
        require(tx.get_node(target_id), target_id, "target node")
        if source.session_id is not None:
            writable_session(tx, source.session_id)
        if tx.get_edge((source_id, kind, target_id)) is not None:
            raise AlreadyExists(
                f"a {kind} edge from {format_id(source_id)} to {format_id(target_id)} "
                "already exists"
            )
        edge = Edge(source_id, target_id, kind, dict(spec.metadata), self.clock())
        tx.create_edge(edge)
        return edge
