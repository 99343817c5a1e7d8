"""Checks every write path shares: nodes that must exist (and be of a kind), sessions that must
still take writes, and the limits on what one node may hold (`graph.limits`)."""

from __future__ import annotations

from memorygraph.errors import FailedPrecondition, NotFound
from memorygraph.graph.limits import Limits
from memorygraph.graph.tx import Transaction
from memorygraph.model import Node, NodeKind, SessionDetails, SessionState, format_id
from memorygraph.store import GraphStore

__all__ = ["Limits", "require", "require_kind", "writable_session"]


def require(node: Node | None, node_id: bytes, what: str = "node") -> Node:
    if node is None:
        raise NotFound(f"{what} {format_id(node_id)} not found")
    return node


def require_kind(source: Transaction | GraphStore, node_id: bytes, kind: NodeKind) -> Node:
    """The node `node_id` of `kind`, read from a transaction (with its own writes) or the
    store; NotFound names what the id is when it is something else."""
    node = source.get_node(node_id)
    if node is not None and node.kind is kind:
        return node
    label = kind.replace("_", " ")
    node = require(node, node_id, label)
    raise NotFound(f"{label} {format_id(node_id)} not found (that id is a {node.kind})")


def writable_session(tx: Transaction, session_id: bytes) -> Node:
    session = require_kind(tx, session_id, NodeKind.SESSION)
    if session.details_as(SessionDetails).state is not SessionState.ACTIVE:
        raise FailedPrecondition(
            f"session {format_id(session_id)} is closed; create a new session to record more turns"
        )
    return session
