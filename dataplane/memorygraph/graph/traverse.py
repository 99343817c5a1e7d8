"""Bounded breadth-first traversal from one node along chosen edge kinds: at most so many nodes,
so deep, and what one response can carry."""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field

from memorygraph import deadline
from memorygraph.codec.nodes import decode_node, node_bytes
from memorygraph.errors import InvalidArgument
from memorygraph.model import Direction, Edge, EdgeKey, EdgeKind, Node
from memorygraph.store import GraphStore

__all__ = ["DEFAULT_MAX_DEPTH", "MAX_DEPTH", "MAX_NODES", "Traversal", "traverse"]

DEFAULT_MAX_DEPTH = 3
MAX_DEPTH = 10
DEFAULT_MAX_NODES = 1000
MAX_NODES = 10_000
# At most what a node takes in a TraverseResponse beyond its record (framing, depth), and an
# edge without metadata.
_NODE_FRAMING = 16
_EDGE_BYTES = 128


@dataclass(slots=True)
class Traversal:
    nodes: list[tuple[Node, int]] = field(default_factory=list)  # (node, depth), BFS order
    edges: list[Edge] = field(default_factory=list)
    truncated: bool = False


def _bounded(value: int, name: str, default: int, cap: int) -> int:
    if value < 0:
        raise InvalidArgument(f"{name} must not be negative (got {value})")
    if value > cap:
        raise InvalidArgument(f"{name} is at most {cap} (got {value})")
    return value or default


def _edge_size(edge: Edge) -> int:
    """At most what an edge takes in a response: two ids, a kind, a time and its metadata."""
    metadata = sum(len(k.encode()) + len(v.encode()) + 8 for k, v in edge.metadata.items())
    return _EDGE_BYTES + metadata


def traverse(
    store: GraphStore,
    start: Node,
    *,
    edge_kinds: list[EdgeKind],
    direction: Direction,
    max_depth: int,
    max_nodes: int,
    max_bytes: int,
) -> Traversal:
    """Nodes and edges breadth-first from `start`; `truncated` when `max_nodes` nodes, or
    `max_bytes` taken by the nodes and edges found (as a response carries them), stopped it
    early."""
    depth_limit = _bounded(max_depth, "max_depth", DEFAULT_MAX_DEPTH, MAX_DEPTH)
    node_limit = _bounded(max_nodes, "max_nodes", DEFAULT_MAX_NODES, MAX_NODES)
    result = Traversal(nodes=[(start, 0)])
    size = len(node_bytes(start)) + _NODE_FRAMING
    seen = {start.id}
    followed: set[EdgeKey] = set()
    frontier: deque[tuple[bytes, int]] = deque([(start.id, 0)])
    while frontier:
        node_id, depth = frontier.popleft()
        deadline.check()
        if depth >= depth_limit:
            continue
        for edge in store.edges(node_id, direction, edge_kinds):
            other = edge.target_id if edge.source_id == node_id else edge.source_id
            if other not in seen:
                if len(result.nodes) >= node_limit:
                    result.truncated = True
                    return result
                record = store.get_node_record(other)
                if record is None:
                    continue
                size += len(record) + _NODE_FRAMING
                if size > max_bytes:
                    result.truncated = True
                    return result
                seen.add(other)
                result.nodes.append((decode_node(other, record), depth + 1))
                frontier.append((other, depth + 1))
            if edge.key not in followed:
                size += _edge_size(edge)
                if size > max_bytes:
                    result.truncated = True
                    return result
                followed.add(edge.key)
                result.edges.append(edge)
    return result
