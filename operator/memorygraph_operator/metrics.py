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
    """Keeps the RESOURCES gauge equal to the last known Ready status of every resource."""

    def __init__(self) -> None:
        self._state: dict[tuple[str, str, str], str] = {}

    def set(self, kind: str, namespace: str, name: str, ready: str | None) -> None:
        """Record a resource's Ready status (None: the resource is gone)."""
        key = (kind, namespace, name)
        if ready is None:
            self._state.pop(key, None)
        else:
            self._state[key] = ready
        for status in ("True", "False", "Unknown"):
            count = sum(1 for (k, _, _), s in self._state.items() if k == kind and s == status)
            RESOURCES.labels(kind=kind, ready=status).set(count)
