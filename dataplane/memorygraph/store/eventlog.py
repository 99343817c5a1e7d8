"""The event log's side of a commit: which events a change set produces, in which order.

Events are derived from the change set itself, inside the same batch, so no write path can
forget to record one and none can be recorded for a change that did not happen.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

from memorygraph.model import Edge, Event, EventType, Node, NodeKind, SessionDetails, SessionState
from memorygraph.store.graph_changes import StoreChanges

__all__ = ["derive_events"]


def _node_event(kind: EventType, node: Node, time: int) -> Event:
    return Event(0, kind, time, node.session_id, node=node)


def derive_events(
    changes: StoreChanges, session_of: Callable[[bytes], bytes | None]
) -> Iterator[Event]:
    """Events for `changes` (sequence numbers not yet assigned), creations before deletions.

    `session_of(node_id)` names the session of an edge's source node when the change set does
    not hold that node.
    """
    time = changes.time
    known: dict[bytes, Node] = {n.id: n for n in changes.created}
    known.update({after.id: after for _, after in changes.updated})
    known.update({n.id: n for n in changes.deleted})

    def edge_event(kind: EventType, edge: Edge) -> Event:
        source = known.get(edge.source_id)
        session = source.session_id if source is not None else session_of(edge.source_id)
        return Event(0, kind, time, session, edge=edge)

    for node in changes.created:
        kind = (
            EventType.SESSION_CREATED if node.kind is NodeKind.SESSION else EventType.NODE_CREATED
        )
        yield _node_event(kind, node, node.create_time)
    for before, after in changes.updated:
        closed = (
            isinstance(after.details, SessionDetails)
            and isinstance(before.details, SessionDetails)
            and before.details.state is not SessionState.CLOSED
            and after.details.state is SessionState.CLOSED
        )
        yield _node_event(
            EventType.SESSION_CLOSED if closed else EventType.NODE_UPDATED, after, time
        )
    for edge in changes.edges_created:
        yield edge_event(EventType.EDGE_CREATED, edge)
    for edge in {e.key: e for e in changes.edges_deleted}.values():
        yield edge_event(EventType.EDGE_DELETED, edge)
    for node in sorted(changes.deleted, key=lambda n: n.kind is NodeKind.SESSION):
        kind = (
            EventType.SESSION_DELETED if node.kind is NodeKind.SESSION else EventType.NODE_DELETED
        )
        yield _node_event(kind, node, time)
