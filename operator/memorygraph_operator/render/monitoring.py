"""The Prometheus-Operator ServiceMonitor of a graph."""

from __future__ import annotations

from typing import Any

from memorygraph_operator.render.context import GraphInputs, RenderEnv
from memorygraph_operator.render.metadata import LABEL_GRAPH, object_meta
from memorygraph_operator.render.names import Names
from memorygraph_operator.render.services import LABEL_SERVICE_ROLE

__all__ = ["render_service_monitor"]


def render_service_monitor(g: GraphInputs, env: RenderEnv) -> dict[str, Any] | None:
    """A ServiceMonitor scraping every pod once, or None when off or its CRD is missing."""
    m = g.spec.monitoring
    if m is None or not m.service_monitor.enabled or not env.service_monitor_available:
        return None
    sm = m.service_monitor
    return {
        "apiVersion": "monitoring.coreos.com/v1",
        "kind": "ServiceMonitor",
        "metadata": object_meta(g, Names(g.name).service_monitor, "monitoring", labels=sm.labels),
        "spec": {
            "selector": {"matchLabels": {LABEL_GRAPH: g.name, LABEL_SERVICE_ROLE: "client"}},
            "namespaceSelector": {"matchNames": [g.namespace]},
            "endpoints": [{"port": "metrics", "path": "/metrics", "interval": sm.interval}],
        },
    }
