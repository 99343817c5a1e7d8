"""Value encoding of nodes and edges (compact JSON arrays; ids live in the keys)."""

from __future__ import annotations

import json
from typing import Any

from memorygraph.graph.model import Edge, EdgeKind, Node, NodeKind

_dumps = json.JSONEncoder(ensure_ascii=False, separators=(",", ":")).encode
_loads = json.JSONDecoder().decode


def encode_node(node: Node) -> bytes:
    session = node.session_id.hex() if node.session_id is not None else None
    row: list[Any] = [
        node.kind.value,
        session,
        node.content,
        node.metadata,
        node.create_time,
        node.update_time,
        node.attrs,
    ]
    return _dumps(row).encode()


def decode_node(node_id: bytes, raw: bytes) -> Node:
    kind, session, content, metadata, create_time, update_time, attrs = _loads(raw.decode())
    return Node(
        id=node_id,
        kind=NodeKind(kind),
        session_id=bytes.fromhex(session) if session is not None else None,
        content=content,
        metadata=metadata,
        create_time=create_time,
        update_time=update_time,
        attrs=attrs,
    )


def encode_edge(edge: Edge) -> bytes:
    return _dumps([edge.metadata, edge.create_time]).encode()


def decode_edge(source: bytes, kind: EdgeKind, target: bytes, raw: bytes) -> Edge:
    metadata, create_time = _loads(raw.decode())
    return Edge(source, target, kind, metadata, create_time)
