"""What a caller asks to create: sessions, nodes and edges before the graph has them.

The server fills in the rest (ids when not given, times, automatic edges, token totals); the
graph service checks every spec against the graph's rules.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from memorygraph.model.details import NodeDetails, default_details
from memorygraph.model.kinds import EdgeKind, NodeKind

__all__ = ["IngestItem", "NewEdge", "NewNode", "NewSession"]


@dataclass(slots=True)
class NewSession:
    """A session to create; `session_id` None lets the server assign an id (UUIDv8)."""

    session_id: bytes | None = None
    title: str = ""
    user_id: str = ""
    agent_id: str = ""
    model: str = ""
    metadata: dict[str, str] = field(default_factory=dict)


@dataclass(slots=True)
class NewEdge:
    source_id: bytes
    target_id: bytes
    kind: EdgeKind
    metadata: dict[str, str] = field(default_factory=dict)


@dataclass(slots=True)
class NewNode:
    """A node to create; `node_id` None lets the server assign an id (UUIDv8).

    `details` are those of `kind` (None: none given). `fresh_id` says `node_id` was made by
    `new_id()` ahead of time (Ingest names its nodes before creating them): no node can have
    it yet, so it is not looked up."""

    kind: NodeKind
    session_id: bytes | None = None
    content: str = ""
    metadata: dict[str, str] = field(default_factory=dict)
    details: NodeDetails | None = None
    node_id: bytes | None = None
    fresh_id: bool = False

    @property
    def given_details(self) -> NodeDetails:
        """The details asked for, or the kind's defaults when none were given."""
        return self.details if self.details is not None else default_details(self.kind)


IngestItem = NewSession | NewNode | NewEdge
