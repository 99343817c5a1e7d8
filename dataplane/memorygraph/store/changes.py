"""The change set one request commits: the unit of atomicity."""

from __future__ import annotations

from dataclasses import dataclass, field

from memorygraph.errors import MemoryGraphError
from memorygraph.model import Edge, Event, Node

__all__ = ["StoreChanges", "UnwritableChange"]


class UnwritableChange(MemoryGraphError):
    """A change set that could not be turned into a write (a value its records cannot hold);
    nothing of it was written."""


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
    # Events to record instead of those derived from the change (archival and restore record
    # one lifecycle event rather than an event per node); sequences are assigned on commit.
    events: list[Event] | None = None
    # Events written back at their own sequence numbers (a restored session's history).
    restored_events: list[Event] = field(default_factory=list)
    # Deleted sessions take their history out of the event log too (archival).
    erase_history: bool = False
    # Sessions that disappear from every read with this commit, to be deleted in later steps
    # (a large session is deleted in several batches so that other writers are not held up).
    hide_sessions: list[bytes] = field(default_factory=list)

    def drop_repeated_edges(self) -> None:
        """Keep each deleted edge once: cascades may reach an edge from both of its ends."""
        if len(self.edges_deleted) > 1:
            self.edges_deleted = list({e.key: e for e in self.edges_deleted}.values())
