"""Prometheus metrics of the operator: reconciles by kind and outcome, resources by readiness."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

__all__ = [
    "RECONCILE_DURATION",
    "RECONCILE_ERRORS",
    "RECONCILE_TOTAL",
    "RESOURCES",
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
