"""The entities of a graph: nodes, edges and the events that record their changes.

No protobuf, no storage here: every other layer builds on these."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TypeVar, cast

from memorygraph.model.details import DETAILS_TYPES, NodeDetails
from memorygraph.model.kinds import EdgeKind, EventType, NodeKind

__all__ = ["Edge", "EdgeKey", "Event", "Node"]

D = TypeVar("D", bound=NodeDetails)


@dataclass(slots=True)
class Node:
    """A node of any kind.

    `details` holds what its kind has beyond the common fields (a response's prompt and token
    usage, a session's state, a template's variables, ...): the details type of `kind`. Times
    are microseconds since the Unix epoch. `session_id` is None for global nodes and equals
    `id` for session nodes.
    """

    id: bytes
    kind: NodeKind
    session_id: bytes | None
    content: str = ""
    metadata: dict[str, str] = field(default_factory=dict)
    create_time: int = 0
    update_time: int = 0
    details: NodeDetails = field(kw_only=True)
    # The node as the store wrote it (a serialized `v1.Node`), set on commit so a response can
    # send it without encoding the node again. Not an init field: `replace()` drops it.
    record: bytes | None = field(default=None, init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if type(self.details) is not DETAILS_TYPES[self.kind]:
            raise TypeError(f"a {self.kind} node cannot hold {type(self.details).__name__}")

    def details_as(self, cls: type[D]) -> D:
        """The details, as the type the caller knows this node's kind has."""
        details = self.details
        if type(details) is not cls:
            raise TypeError(f"node {self.id.hex()} is a {self.kind}, not a {cls.__name__}")
        return cast(D, details)


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
