"""Value encoding of the store's records: nodes in the API's wire format (`codec.nodes`), edges
and event headers as compact JSON arrays; ids live in the keys.

Schema 2 and older stored nodes as JSON arrays too; `decode_legacy_node` reads them for the
upgrade to schema 3 and nothing else.
"""

from __future__ import annotations

import json
from collections.abc import Callable

from memorygraph.codec.nodes import decode_node, encode_node, node_bytes
from memorygraph.model import (
    Edge,
    EdgeKind,
    Event,
    EventType,
    Node,
    NodeKind,
    details_from_fields,
)

__all__ = [
    "decode_edge",
    "decode_event",
    "decode_legacy_node",
    "decode_node",
    "encode_edge",
    "encode_event",
    "encode_node",
]

_dumps = json.JSONEncoder(ensure_ascii=False, separators=(",", ":")).encode
_loads = json.JSONDecoder().decode


def decode_legacy_node(node_id: bytes, raw: bytes) -> Node:
    kind, session, content, metadata, create_time, update_time, attrs = _loads(raw.decode())
    return Node(
        id=node_id,
        kind=NodeKind(kind),
        session_id=bytes.fromhex(session) if session is not None else None,
        content=content,
        metadata=metadata,
        create_time=create_time,
        update_time=update_time,
        details=details_from_fields(NodeKind(kind), attrs),
    )


def encode_edge(edge: Edge) -> bytes:
    if not edge.metadata:  # the automatic edges of every turn: skip the JSON encoder
        return b"[{},%d]" % edge.create_time
    return _dumps([edge.metadata, edge.create_time]).encode()


def decode_edge(source: bytes, kind: EdgeKind, target: bytes, raw: bytes) -> Edge:
    metadata, create_time = _loads(raw.decode())
    return Edge(source, target, kind, metadata, create_time)


def encode_event(event: Event, edge_record: bytes | None = None) -> bytes:
    """Header line, then the node record or the edge, so events reuse the record codecs: a
    node's record as the store wrote it when it has one, `edge_record` the edge already
    encoded for its own record, when the caller has it."""
    node, edge = event.node, event.edge
    # Hand-assembled JSON: every field is an enum value, an int, hex or null (hot path). The
    # kinds are StrEnums: formatted, they are their values.
    session = f'"{event.session_id.hex()}"' if event.session_id is not None else "null"
    node_id = f'"{node.id.hex()}"' if node is not None else "null"
    edge_key = (
        f'["{edge.source_id.hex()}","{edge.kind}","{edge.target_id.hex()}"]'
        if edge is not None
        else "null"
    )
    header = f'["{event.type}",{event.time},{session},{node_id},{edge_key}]'.encode()
    if node is not None:
        body = node_bytes(node)
    elif edge is not None:
        body = edge_record if edge_record is not None else encode_edge(edge)
    else:
        body = b""
    return header + b"\n" + body


def decode_event(
    sequence: int, raw: bytes, decode_body: Callable[[bytes, bytes], Node] = decode_node
) -> Event:
    """`decode_body` reads the node record (`decode_legacy_node` for schema 2 and older)."""
    head, _, body = raw.partition(b"\n")
    kind, time, session, node_id, edge_key = _loads(head.decode())
    event = Event(sequence, EventType(kind), time, bytes.fromhex(session) if session else None)
    if node_id is not None:
        event.node = decode_body(bytes.fromhex(node_id), body)
    elif edge_key is not None:
        source, edge_kind, target = edge_key
        event.edge = decode_edge(
            bytes.fromhex(source), EdgeKind(edge_kind), bytes.fromhex(target), body
        )
    return event
