"""Every enum of the API against its domain value, in one table each, both ways.

Request values are checked here: an unset or unknown value is an `InvalidArgument` naming the
field and the values it takes.
"""

from __future__ import annotations

from collections.abc import Iterable
from enum import StrEnum
from typing import Any, Generic, TypeVar

from memorygraph.errors import InvalidArgument
from memorygraph.model import Direction, EdgeKind, EventType, NodeKind, SessionState, ToolStatus
from memorygraph.v1 import graph_pb2 as pb

__all__ = [
    "DIRECTIONS",
    "EDGE_KINDS",
    "EVENT_TYPES",
    "NODE_KINDS",
    "SESSION_STATES",
    "TOOL_STATUSES",
    "EnumTable",
    "direction",
    "edge_kind",
    "edge_kinds",
    "event_types",
    "node_kind",
    "node_kinds",
    "session_state",
    "tool_status",
]

E = TypeVar("E", bound=StrEnum)


class EnumTable(Generic[E]):
    """A domain enum and the API enum it is sent as: `NODE_KIND_PROMPT` <-> `NodeKind.PROMPT`.

    `unset` is the domain value of the API's 0 (UNSPECIFIED), when it has one."""

    def __init__(self, domain: type[E], prefix: str, *, unset: E | None = None) -> None:
        self.name = prefix.lower().replace("_", " ")
        self.to_wire: dict[E, Any] = {
            member: getattr(pb, f"{prefix}_{member.name}") for member in domain if member != unset
        }
        if unset is not None:
            self.to_wire[unset] = getattr(pb, f"{prefix}_UNSPECIFIED")
        self.from_wire: dict[int, E] = {int(v): k for k, v in self.to_wire.items()}

    def parse(self, value: int, field: str) -> E:
        """The domain value of a request's enum field; an unset one is refused unless the
        table has a value for it."""
        found = self.from_wire.get(value)
        if found is not None:
            return found
        names = ", ".join(m.name for m in self.to_wire if self.to_wire[m])
        if value == 0:
            raise InvalidArgument(f"{field} is required (one of {names})")
        raise InvalidArgument(f"{field} {value} is not a known {self.name} (one of {names})")


NODE_KINDS = EnumTable(NodeKind, "NODE_KIND")
EDGE_KINDS = EnumTable(EdgeKind, "EDGE_KIND")
EVENT_TYPES = EnumTable(EventType, "EVENT_TYPE")
SESSION_STATES = EnumTable(SessionState, "SESSION_STATE")
TOOL_STATUSES = EnumTable(ToolStatus, "TOOL_STATUS", unset=ToolStatus.UNSPECIFIED)
DIRECTIONS = EnumTable(Direction, "DIRECTION")


def node_kind(value: int, field: str = "kind") -> NodeKind:
    return NODE_KINDS.parse(value, field)


def node_kinds(values: Iterable[int], field: str = "kinds") -> frozenset[NodeKind]:
    return frozenset(NODE_KINDS.parse(v, field) for v in values)


def edge_kind(value: int, field: str = "kind") -> EdgeKind:
    return EDGE_KINDS.parse(value, field)


def edge_kinds(values: Iterable[int], field: str = "kinds") -> list[EdgeKind]:
    return [EDGE_KINDS.parse(v, field) for v in values]


def event_types(values: Iterable[int]) -> frozenset[EventType]:
    """A filter's event types; UNSPECIFIED is not one."""
    return frozenset(EVENT_TYPES.parse(v, "types") if v else _unset_event_type() for v in values)


def _unset_event_type() -> EventType:
    raise InvalidArgument("types: 0 (EVENT_TYPE_UNSPECIFIED) is not an event type to filter by")


def direction(value: int) -> Direction:
    """Outgoing when unset."""
    return Direction.OUTGOING if value == 0 else DIRECTIONS.parse(value, "direction")


def session_state(value: int) -> SessionState | None:
    """None (any state) when unset."""
    return None if value == 0 else SESSION_STATES.parse(value, "state")


def tool_status(value: int) -> ToolStatus:
    return TOOL_STATUSES.parse(value, "status")
