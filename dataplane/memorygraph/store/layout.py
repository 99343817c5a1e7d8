"""Which records and index entries a change implies: written by every commit and rebuilt by the
upgrades of older data directories, so both produce the same layout."""

from __future__ import annotations

from memorygraph.codec.framing import QUERY_BATCH_NODES, frame
from memorygraph.model import Edge, Event, Node, NodeKind, TemplateDetails
from memorygraph.store import keys
from memorygraph.store.changes import StoreChanges
from memorygraph.store.kv import Op
from memorygraph.store.records import encode_edge, encode_node

__all__ = [
    "graph_ops",
    "indexed_session",
    "node_index_ops",
    "session_event_op",
    "session_index_op",
]


def indexed_session(event: Event) -> bytes | None:
    """The session whose event index lists `event`: that of a session's own history, None for
    global changes and the lifecycle markers of archival and restore."""
    return None if event.type.is_lifecycle else event.session_id


def session_event_op(session_id: bytes, sequence: int, *, present: bool = True) -> Op:
    return (
        keys.CF_SESSION_EVENTS,
        keys.session_event_key(session_id, sequence),
        b"" if present else None,
    )


def session_index_op(node: Node, record: bytes | None) -> Op | None:
    """A session member's entry in the by-session index, carrying its record framed for a
    QueryBatch (None deletes it). Queries of a session read records from here without
    looking each node up."""
    if node.session_id is None or node.kind is NodeKind.SESSION:
        return None
    key = keys.session_index_key(node.session_id, node.create_time, node.id, node.kind)
    value = frame(QUERY_BATCH_NODES, record) if record is not None else None
    return (keys.CF_BY_SESSION, key, value)


def node_index_ops(node: Node, record: bytes | None) -> list[Op]:
    """The index entries of `node` with its `record`, or their deletion (None)."""
    present = record is not None
    ops: list[Op] = []
    if (entry := session_index_op(node, record)) is not None:
        ops.append(entry)
    key = keys.kind_index_key(node.kind, node.create_time, node.id)
    ops.append((keys.CF_BY_KIND, key, (node.session_id or b"") if present else None))
    if isinstance(node.details, TemplateDetails):
        name_key = keys.template_name_key(node.details.name)
        ops.append((keys.CF_NAMES, name_key, node.id if present else None))
    return ops


def _edge_ops(edge: Edge, record: bytes | None) -> list[Op]:
    """Both entries of an edge: its record under its source, a pointer under its target."""
    return [
        (keys.CF_EDGES_OUT, keys.edge_out_key(edge.source_id, edge.kind, edge.target_id), record),
        (
            keys.CF_EDGES_IN,
            keys.edge_in_key(edge.target_id, edge.kind, edge.source_id),
            b"" if record is not None else None,
        ),
    ]


def graph_ops(changes: StoreChanges) -> tuple[list[Op], dict[int, bytes]]:
    """The record and index writes of the nodes and edges `changes` creates, updates and
    deletes; and the records written for new edges, by the edge objects' id(), which their
    events reuse. Each node written gets its record (`Node.record`)."""
    ops: list[Op] = []
    edge_records: dict[int, bytes] = {}
    for node in changes.created:
        # A new node may come encoded already (node creation measures its response).
        record = node.record if node.record is not None else encode_node(node)
        node.record = record
        ops.append((keys.CF_NODES, node.id, record))
        ops += node_index_ops(node, record)
    for _, after in changes.updated:
        after.record = record = encode_node(after)
        ops.append((keys.CF_NODES, after.id, record))
        if (entry := session_index_op(after, record)) is not None:
            ops.append(entry)
    for edge in changes.edges_created:
        edge_records[id(edge)] = record = encode_edge(edge)
        ops += _edge_ops(edge, record)
    for edge in changes.edges_deleted:
        ops += _edge_ops(edge, None)
    for node in changes.deleted:
        ops.append((keys.CF_NODES, node.id, None))
        ops += node_index_ops(node, None)
    return ops, edge_records
