"""Prometheus metrics of the operator: reconciles by kind and outcome, resources by readiness."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

__all__ = [
    "MOVES_STUCK",
    "MOVE_FENCE",
    "RECONCILE_DURATION",
    "RECONCILE_ERRORS",
    "RECONCILE_TOTAL",
    "RESOURCES",
    "SHARD_MOVES",
    "ReadinessTracker",
]

RECONCILE_TOTAL = Counter(
    "memorygraph_operator_reconcile_total",
    "Reconciles run, by kind and result (success, invalid, error, paused).",
    ["kind", "result"],
)
RECONCILE_ERRORS = Counter(
    "memorygraph_operator_reconcile_errors_total",
    "Reconciles that failed, by kind and error class.",
    ["kind", "error"],
)
RECONCILE_DURATION = Histogram(
    "memorygraph_operator_reconcile_duration_seconds",
    "Time one reconcile took, by kind.",
    ["kind"],
    buckets=(0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
)
RESOURCES = Gauge(
    "memorygraph_operator_resources",
    "Custom resources the operator manages, by kind and Ready condition status.",
    ["kind", "ready"],
)

SHARD_MOVES = Counter(
    "memorygraph_operator_shard_moves_total",
    "Moves of a shard between a graph's pods the operator asked for, by result (done, failed).",
    ["result"],
)
MOVE_FENCE = Histogram(
    "memorygraph_operator_shard_move_fence_seconds",
    "How long a finished move paused the graph's writes, as its target pod reports it.",
    buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5),
)
MOVES_STUCK = Gauge(
    "memorygraph_operator_shard_moves_stuck",
    "Graphs whose move under way failed repeatedly (their Rebalancing reason is MoveStuck).",
)


class ReadinessTracker:
    """Keeps the RESOURCES gauge equal to the last known Ready status of every resource.

    Counts are kept up to date on each change, so a resync of thousands of graphs costs no
    recount."""

    def __init__(self) -> None:
        self._state: dict[tuple[str, str, str], str] = {}
        self._counts: dict[tuple[str, str], int] = {}

    def set(self, kind: str, namespace: str, name: str, ready: str | None) -> None:
        """Record a resource's Ready status (None: the resource is gone)."""
        key = (kind, namespace, name)
        before = self._state.pop(key, None) if ready is None else self._state.get(key)
        if ready is not None:
            self._state[key] = ready
        if before == ready:
            return
        for status, step in ((before, -1), (ready, 1)):
            if status is not None:
                self._counts[(kind, status)] = self._counts.get((kind, status), 0) + step
        for status in ("True", "False", "Unknown"):
            RESOURCES.labels(kind=kind, ready=status).set(self._counts.get((kind, status), 0))
