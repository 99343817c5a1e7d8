"""The optional NetworkPolicy restricting who reaches the data plane."""

from __future__ import annotations

from typing import Any

from memorygraph_operator.render.context import GraphInputs
from memorygraph_operator.render.image import GRPC_PORT, METRICS_PORT
from memorygraph_operator.render.metadata import LABEL_ARCHIVAL, object_meta, selector_labels
from memorygraph_operator.render.names import Names

__all__ = ["render_network_policy"]


def render_network_policy(g: GraphInputs) -> dict[str, Any] | None:
    """Ingress only from the listed clients, the graph's own pods and its archival Job (gRPC),
    and to metrics.

    The metrics port stays open to every source: where Prometheus runs differs per cluster and
    the endpoint exposes counters only. None when the policy is not enabled.
    """
    np = g.spec.network_policy
    if np is None or not np.enabled:
        return None
    peers: list[dict[str, Any]] = [{"podSelector": {"matchLabels": selector_labels(g)}}]
    if g.spec.archival is not None:
        peers.append({"podSelector": {"matchLabels": {LABEL_ARCHIVAL: g.name}}})
    peers.extend(np.allowed_clients or [])
    return {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "NetworkPolicy",
        "metadata": object_meta(g, Names(g.name).network_policy, "data-plane"),
        "spec": {
            "podSelector": {"matchLabels": selector_labels(g)},
            "policyTypes": ["Ingress"],
            "ingress": [
                {"from": peers, "ports": [{"port": GRPC_PORT, "protocol": "TCP"}]},
                {"ports": [{"port": METRICS_PORT, "protocol": "TCP"}]},
            ],
        },
    }
