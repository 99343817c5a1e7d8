"""Edges and events as API messages."""

from __future__ import annotations

from memorygraph.codec.enums import EDGE_KINDS, EVENT_TYPES
from memorygraph.codec.nodes import node_message
from memorygraph.codec.times import timestamp
from memorygraph.model import Edge, Event, format_id
from memorygraph.v1 import graph_pb2 as pb

__all__ = ["edge_message", "event_message"]


def edge_message(edge: Edge) -> pb.Edge:
    return pb.Edge(
        source_id=format_id(edge.source_id),
        target_id=format_id(edge.target_id),
        kind=EDGE_KINDS.to_wire[edge.kind],
        metadata=edge.metadata,
        create_time=timestamp(edge.create_time),
    )


def event_message(event: Event) -> pb.Event:
    message = pb.Event(
        sequence=event.sequence,
        type=EVENT_TYPES.to_wire[event.type],
        time=timestamp(event.time),
        session_id=format_id(event.session_id) if event.session_id is not None else "",
    )
    if event.node is not None:
        message.node.CopyFrom(node_message(event.node))
    if event.edge is not None:
        message.edge.CopyFrom(edge_message(event.edge))
    return message
