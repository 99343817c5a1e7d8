"""The points at which the graph service lets something outside it look at, change or refuse a
call: before the write transaction, and after the change is durable.

`GraphService` takes one `GraphHooks` object and calls it at these points; this base class
does nothing at any of them, and plugins (`memorygraph.plugins.graph_hooks`) override what they
need. Before-hooks receive what the caller asked for and return what is to be written (or
raise to refuse); they never run under the writers' lock. After-hooks cannot fail the call.

Reads (every RPC that returns graph data) pass `before_read` once their subject is known — a
node's session is known only once the node is read — and `after_read` with what they returned.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from memorygraph.graph.query import QueryFilter
from memorygraph.model import Edge, NewEdge, NewNode, NewSession, Node

__all__ = ["GraphHooks", "Instantiation", "Read"]


@dataclass(frozen=True, slots=True)
class Read:
    """One read as the read hooks see it.

    `name` says which read (get_node, batch_get_nodes, get_session, list_sessions, query,
    stream_query, traverse, get_edges, get_template, export_session, archive_candidates,
    stream_events, subscribe_to_session); `session_id` is the session read, when one is;
    `session_ids` every session whose data the answer holds, for reads that are checked once
    their answer is known and may span sessions (batch_get_nodes, query, traverse,
    list_sessions, archive_candidates); `node_ids` the nodes asked for by id; `query` the
    filter of a query; `options` the rest of the request. Streams (stream_query,
    stream_events) are checked once, before they start, by their filter."""

    name: str
    session_id: bytes | None = None
    node_ids: tuple[bytes, ...] = ()
    query: QueryFilter | None = None
    options: dict[str, object] = field(default_factory=dict)
    session_ids: tuple[bytes, ...] = ()


@dataclass(frozen=True, slots=True)
class Instantiation:
    """A template rendered with `values` into `content`, to be recorded as a prompt in
    `session_id` when there is one."""

    template: Node
    content: str
    session_id: bytes | None
    values: dict[str, str]
    metadata: dict[str, str]


class GraphHooks:
    """Hook points of the graph service; this base class lets every call through unchanged."""

    @property
    def watches_reads(self) -> bool:
        """Whether `before_read`/`after_read` do anything: reads skip the work of describing
        themselves (decoding a record to learn its session) when they don't."""
        return False

    # -- sessions ----------------------------------------------------------------------------

    def before_create_session(self, spec: NewSession) -> NewSession:
        return spec

    def after_create_session(self, session: Node) -> None:
        pass

    def before_close_session(self, session_id: bytes) -> None:
        pass

    def after_close_session(self, session: Node) -> None:
        pass

    def before_delete_session(self, session_id: bytes) -> None:
        pass

    def after_delete_session(self, session_id: bytes, nodes: int, edges: int) -> None:
        pass

    # -- nodes -------------------------------------------------------------------------------

    def before_create_node(self, spec: NewNode) -> NewNode:
        return spec

    def after_create_node(self, node: Node) -> None:
        pass

    @property
    def watches_updates(self) -> bool:
        """Whether `before_update_node` does anything (it needs the node read first)."""
        return False

    def before_update_node(
        self, current: Node, content: str | None, metadata: dict[str, str] | None
    ) -> tuple[str | None, dict[str, str] | None]:
        """The content and metadata to write (None leaves a field as it is)."""
        return content, metadata

    def after_update_node(self, node: Node) -> None:
        pass

    def before_delete_node(self, node: Node) -> None:
        pass

    def after_delete_node(self, node: Node, edges: int) -> None:
        pass

    # -- edges -------------------------------------------------------------------------------

    def before_create_edge(self, spec: NewEdge) -> NewEdge:
        return spec

    def after_create_edge(self, edge: Edge) -> None:
        pass

    def before_delete_edge(self, edge: Edge) -> None:
        pass

    def after_delete_edge(self, edge: Edge) -> None:
        pass

    # -- templates ---------------------------------------------------------------------------

    def before_instantiate_template(self, call: Instantiation) -> Instantiation:
        """The instantiation to go on with (its text and metadata may change)."""
        return call

    def after_instantiate_template(self, call: Instantiation) -> None:
        pass

    # -- reads -------------------------------------------------------------------------------

    def before_read(self, read: Read) -> None:
        pass

    def after_read(self, read: Read, returned: int) -> None:
        pass

    # -- archival ----------------------------------------------------------------------------

    def before_archive(self, session: Node) -> None:
        pass

    def after_archive(
        self, session: Node, *, content_sha256: str, nodes: int, edges: int, events: int
    ) -> None:
        pass
