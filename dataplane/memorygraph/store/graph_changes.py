"""The change set one request commits: the unit of atomicity."""

from __future__ import annotations

from dataclasses import dataclass, field

from memorygraph.graph.model import Edge, Node

__all__ = ["StoreChanges"]


@dataclass(slots=True)
class StoreChanges:
    """Everything one request changes; committed as one batch."""

    created: list[Node] = field(default_factory=list)
    updated: list[tuple[Node, Node]] = field(default_factory=list)  # (before, after)
    deleted: list[Node] = field(default_factory=list)
    edges_created: list[Edge] = field(default_factory=list)
    edges_deleted: list[Edge] = field(default_factory=list)
    # When the change happened (microseconds); stamped on its events.
    time: int = 0
