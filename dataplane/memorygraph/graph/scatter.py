"""Reads over every shard when the shards are spread over workers: each worker answers for its own
shards with a page in the usual order, and the pages are merged into the page one store holding
every shard would have answered.

Every page holds its items with their positions (create time, node id) and where its worker
stopped: the position after which that worker has more (a page cut short by the page size, the
scan budget or the byte budget), or None when it has nothing more. Items past the nearest such
stop may have neighbours that worker has not read yet, so the merged page ends there at the
latest, and its token holds the position to go on from: the same token, handed to every worker,
continues every worker's listing at once, with no duplicate and no gap.
"""

from __future__ import annotations

import heapq
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Generic, TypeVar

from memorygraph.graph.limits import FRAMING

__all__ = ["Part", "merge_pages"]

T = TypeVar("T")
Position = tuple[int, bytes]


@dataclass(slots=True)
class Part(Generic[T]):
    """One worker's page: (position, item) pairs in the listing's order, and where it stopped
    (None: it has nothing past them)."""

    items: list[tuple[Position, T]]
    stop: Position | None


def merge_pages(
    parts: Sequence[Part[T]],
    want: int,
    *,
    descending: bool,
    size: Callable[[T], int] | None = None,
    max_bytes: int | None = None,
) -> tuple[list[T], Position | None]:
    """The first `want` items of the merged listing (their sizes, with `size`, within
    `max_bytes`; one item at least), and the position after which the next page starts (None
    when nothing is left anywhere)."""
    stops = [part.stop for part in parts if part.stop is not None]
    bound: Position | None = None
    if stops:
        bound = max(stops) if descending else min(stops)
    merged = heapq.merge(
        *(part.items for part in parts), key=lambda pair: pair[0], reverse=descending
    )
    taken: list[T] = []
    last: Position | None = None
    used = 0
    for position, item in merged:
        if bound is not None and (position < bound if descending else position > bound):
            break  # a worker has not read this far yet
        if len(taken) == want:
            return taken, last
        if size is not None and max_bytes is not None:
            used += size(item) + FRAMING
            if taken and used > max_bytes:
                return taken, last
        taken.append(item)
        last = position
    return taken, bound
