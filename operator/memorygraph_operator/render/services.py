"""The two Services of a graph: headless (stable pod DNS for the StatefulSet) and client."""

from __future__ import annotations

from typing import Any

from memorygraph_operator.api.base import GROUP
from memorygraph_operator.render.context import GraphInputs
from memorygraph_operator.render.image import GRPC_PORT, METRICS_PORT, PEER_PORT
from memorygraph_operator.render.metadata import object_meta, selector_labels
from memorygraph_operator.render.names import Names

__all__ = ["LABEL_SERVICE_ROLE", "render_client_service", "render_headless_service"]

# Tells the two Services apart so the ServiceMonitor scrapes each pod once, not twice.
LABEL_SERVICE_ROLE = f"{GROUP}/service"

_PORTS = [
    {
        "name": "grpc",
        "port": GRPC_PORT,
        "targetPort": "grpc",
        "protocol": "TCP",
        "appProtocol": "grpc",
    },
    {"name": "metrics", "port": METRICS_PORT, "targetPort": "metrics", "protocol": "TCP"},
]


def render_headless_service(g: GraphInputs) -> dict[str, Any]:
    """Headless Service the StatefulSet's pods get their DNS names from."""
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": object_meta(
            g, Names(g.name).headless_service, "data-plane", labels={LABEL_SERVICE_ROLE: "headless"}
        ),
        "spec": {
            "clusterIP": "None",
            # Pod names resolve before the pods are ready: a client pinned to one pod finds it
            # by name while it starts.
            "publishNotReadyAddresses": True,
            "selector": selector_labels(g),
            "ports": [dict(p) for p in _PORTS] + _peer_ports(g),
        },
    }


def _peer_ports(g: GraphInputs) -> list[dict[str, Any]]:
    """The port a graph's pods call each other on, by their headless names (never on the
    client Service)."""
    if g.shard_map is None:
        return []
    return [
        {
            "name": "peer",
            "port": PEER_PORT,
            "targetPort": "peer",
            "protocol": "TCP",
            "appProtocol": "grpc",
        }
    ]


def render_client_service(g: GraphInputs) -> dict[str, Any]:
    """The Service applications connect to: ``<graph>.<namespace>.svc:50051``."""
    svc = g.spec.service
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": object_meta(
            g,
            Names(g.name).service,
            "data-plane",
            labels={LABEL_SERVICE_ROLE: "client"},
            annotations=svc.annotations if svc else None,
        ),
        "spec": {
            "type": svc.type if svc else "ClusterIP",
            "selector": selector_labels(g),
            "ports": [dict(p) for p in _PORTS],
        },
    }
