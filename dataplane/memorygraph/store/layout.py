"""Which index entries a node or an event implies: written by every commit and rebuilt by the
upgrades of older data directories, so both produce the same layout."""

from __future__ import annotations

from memorygraph.codec.framing import QUERY_BATCH_NODES, frame
from memorygraph.model import Event, Node, NodeKind, TemplateDetails
from memorygraph.store import keys
from memorygraph.store.kv import Op

__all__ = ["indexed_session", "node_index_ops", "session_event_op", "session_index_op"]


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
