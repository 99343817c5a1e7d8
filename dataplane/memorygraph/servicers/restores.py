"""Admission of restores: how many run at once, and how many export bytes they hold together.

A restore holds what it reads of its export until it is written back (up to a gigabyte), so
restores are bounded apart from other calls: beyond `max_restores` at once a restore is refused
with RESOURCE_EXHAUSTED before it reads anything, and every piece of an export is charged to
a byte budget shared by all restores before it is decoded. A piece that would take the
restores in flight past the budget ends its restore with RESOURCE_EXHAUSTED (retry once
others are done); an export larger than one restore may ever hold is INVALID_ARGUMENT.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Iterator
from contextlib import contextmanager

from memorygraph.errors import InvalidArgument, ResourceExhausted
from memorygraph.graph.export import ExportDecoder, SessionExport
from memorygraph.metrics import definitions as metrics
from memorygraph.sizes import ByteBudget

__all__ = ["MAX_EXPORT_BYTES", "RestoreLimits"]

# The largest export a restore reads (archival refuses to ship larger ones).
MAX_EXPORT_BYTES = 1 << 30


class RestoreLimits:
    def __init__(
        self, *, max_restores: int, budget_bytes: int, max_export_bytes: int = MAX_EXPORT_BYTES
    ) -> None:
        self.max_restores = max_restores
        self.budget = ByteBudget(budget_bytes)
        # One restore may hold no more than the whole budget.
        self.max_export_bytes = min(max_export_bytes, budget_bytes)
        self._running = 0
        self._lock = threading.Lock()

    @contextmanager
    def export(self, pieces: Iterable[bytes]) -> Iterator[SessionExport]:
        """The export that `pieces` carry, decoded as they arrive; admitted and charged to
        the budget until the block ends."""
        with self._lock:
            admitted = self._running < self.max_restores
            self._running += admitted
        if not admitted:
            raise ResourceExhausted(
                f"too many restores at once (limit {self.max_restores}); retry later"
            )
        held = 0
        try:
            decoder = ExportDecoder()
            for piece in pieces:
                self._charge(len(piece), held)
                held += len(piece)
                metrics.RESTORE_BYTES.inc(len(piece))
                decoder.feed(piece)
            yield decoder.finish()
        finally:
            self.budget.give(held)
            metrics.RESTORE_BYTES.dec(held)
            with self._lock:
                self._running -= 1

    def _charge(self, size: int, held: int) -> None:
        """Take `size` more bytes for a restore that holds `held` already, or refuse."""
        if held + size > self.max_export_bytes:
            setting = " (restore_budget_bytes)" if self.max_export_bytes < MAX_EXPORT_BYTES else ""
            raise InvalidArgument(
                f"the export is larger than {self.max_export_bytes} bytes, the most one "
                f"restore takes on this server{setting}"
            )
        if not self.budget.take(size):
            raise ResourceExhausted(
                f"restores in flight hold {self.budget.held} bytes of exports; this one would "
                f"take them past the {self.budget.limit} bytes they may hold together; retry "
                "later"
            )
