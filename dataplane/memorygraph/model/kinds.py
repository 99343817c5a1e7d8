"""The kinds of things in a graph: node kinds, edge kinds, event types and the small enums
that go with them. Plain values; nothing here knows of protobuf or storage."""

from __future__ import annotations

from enum import StrEnum

__all__ = ["Direction", "EdgeKind", "EventType", "NodeKind", "SessionState", "ToolStatus"]


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


class ToolStatus(StrEnum):
    UNSPECIFIED = ""
    SUCCEEDED = "succeeded"
    FAILED = "failed"


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
