"""Domain objects of the graph: nodes, edges and their kinds. No protobuf, no storage here."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

__all__ = [
    "Direction",
    "Edge",
    "EdgeKey",
    "EdgeKind",
    "Event",
    "EventType",
    "Node",
    "NodeKind",
    "SessionState",
]


class NodeKind(StrEnum):
    SESSION = "session"
    PROMPT = "prompt"
    RESPONSE = "response"
    TOOL_INVOCATION = "tool_invocation"
    AGENT = "agent"
    TEMPLATE = "template"

    @property
    def is_global(self) -> bool:
        """Global nodes belong to no session."""
        return self in (NodeKind.AGENT, NodeKind.TEMPLATE)


class EdgeKind(StrEnum):
    BELONGS_TO = "belongs_to"
    RESPONDS_TO = "responds_to"
    FOLLOWS = "follows"
    INVOKES = "invokes"
    HANDLED_BY = "handled_by"
    INSTANTIATES = "instantiates"
    INHERITS = "inherits"
    TRANSFERS_TO = "transfers_to"
    REFERENCES = "references"


class Direction(StrEnum):
    OUTGOING = "outgoing"
    INCOMING = "incoming"
    BOTH = "both"


class SessionState(StrEnum):
    ACTIVE = "active"
    CLOSED = "closed"


@dataclass(slots=True)
class Node:
    """A node of any kind.

    `attrs` holds the kind-specific fields (a response's prompt_id and token counts, a session's
    state, a template's variables, ...). Times are microseconds since the Unix epoch.
    `session_id` is None for global nodes and equals `id` for session nodes.
    """

    id: bytes
    kind: NodeKind
    session_id: bytes | None
    content: str = ""
    metadata: dict[str, str] = field(default_factory=dict)
    create_time: int = 0
    update_time: int = 0
    attrs: dict[str, Any] = field(default_factory=dict)
    # The node as the store wrote it (a serialized `v1.Node`), set on commit so a response can
    # send it without encoding the node again. Not an init field: `replace()` drops it.
    record: bytes | None = field(default=None, init=False, repr=False, compare=False)


EdgeKey = tuple[bytes, EdgeKind, bytes]
"""(source id, kind, target id): an edge's identity; at most one edge per key."""


@dataclass(slots=True)
class Edge:
    source_id: bytes
    target_id: bytes
    kind: EdgeKind
    metadata: dict[str, str] = field(default_factory=dict)
    create_time: int = 0

    @property
    def key(self) -> EdgeKey:
        return (self.source_id, self.kind, self.target_id)


class EventType(StrEnum):
    SESSION_CREATED = "session_created"
    SESSION_CLOSED = "session_closed"
    SESSION_DELETED = "session_deleted"
    NODE_CREATED = "node_created"
    NODE_UPDATED = "node_updated"
    NODE_DELETED = "node_deleted"
    EDGE_CREATED = "edge_created"
    EDGE_DELETED = "edge_deleted"
    # Storage lifecycle of a whole session: moved to an archive (its history erased from the
    # log) and brought back from one. They are not part of the session's own history.
    SESSION_ARCHIVED = "session_archived"
    SESSION_RESTORED = "session_restored"

    @property
    def is_lifecycle(self) -> bool:
        return self in (EventType.SESSION_ARCHIVED, EventType.SESSION_RESTORED)


@dataclass(slots=True)
class Event:
    """One change, as recorded in the event log in the same batch as the change itself.

    `node` is the node after the change (for deletions: as it was); `edge` is set for edge
    events. `session_id` is None for changes to global nodes and their edges.
    """

    sequence: int
    type: EventType
    time: int
    session_id: bytes | None
    node: Node | None = None
    edge: Edge | None = None
