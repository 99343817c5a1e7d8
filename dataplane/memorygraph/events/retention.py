"""Event-log retention: keep events for a time window and at most a number of them."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

from memorygraph.periodic import Periodic
from memorygraph.store import GraphStore

__all__ = ["EventRetention", "retention_cutoff"]

log = logging.getLogger("memorygraph.events")


def retention_cutoff(store: GraphStore, *, now: int, max_age: int, max_events: int) -> int:
    """The first sequence to keep: younger than `max_age` µs and among the newest `max_events`."""
    events = store.events
    oldest, last = events.oldest_sequence(), events.last_sequence
    cutoff = max(oldest, events.sequence_after(events.retained() - max_events))
    # Event times follow sequence order: binary-search the first one inside the window (over
    # sequence numbers, which are not consecutive: `time_at` finds the next event).
    lo, hi = cutoff, last + 1
    while lo < hi:
        mid = (lo + hi) // 2
        stamp = events.time_at(mid)
        if stamp is not None and stamp >= now - max_age:
            hi = mid
        else:
            lo = mid + 1
    return lo


class EventRetention:
    """Trims the event log every `interval` seconds in a daemon thread."""

    def __init__(
        self,
        store: GraphStore,
        *,
        max_age_seconds: float,
        max_events: int,
        interval: float = 60.0,
        clock: Callable[[], int] = lambda: time.time_ns() // 1000,
        floor: Callable[[], int] | None = None,
    ) -> None:
        """`floor()`, when given, is the oldest sequence a consumer (the registry reporter)
        still needs: retention never removes it, however old it is."""
        self.store = store
        self.max_age = int(max_age_seconds * 1_000_000)
        self.max_events = max_events
        self.interval = interval
        self.clock = clock
        self.floor = floor
        self._trims = Periodic(
            "event-retention",
            interval,
            self.trim_once,
            log=log,
            failure="trimming the event log failed; will retry",
        )

    def trim_once(self) -> int:
        """Apply the policy now; returns the first retained sequence."""
        cutoff = retention_cutoff(
            self.store, now=self.clock(), max_age=self.max_age, max_events=self.max_events
        )
        if self.floor is not None:
            cutoff = min(cutoff, self.floor())
        if cutoff > self.store.events.oldest_sequence():
            self.store.events.trim(cutoff)
        return cutoff

    def start(self) -> None:
        self._trims.start()

    def stop(self) -> None:
        self._trims.stop()
