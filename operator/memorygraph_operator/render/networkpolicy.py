"""The NetworkPolicy restricting who reaches a graph's pods, on unless switched off."""

from __future__ import annotations

from typing import Any

from memorygraph_operator.render.context import GraphInputs, RenderEnv
from memorygraph_operator.render.image import GRPC_PORT, METRICS_PORT, PEER_PORT
from memorygraph_operator.render.metadata import LABEL_ARCHIVAL, object_meta, selector_labels
from memorygraph_operator.render.names import Names

__all__ = ["render_network_policy"]

# Set by the API server on every namespace: selects a namespace by name.
NAMESPACE_NAME_LABEL = "kubernetes.io/metadata.name"


def _grpc_rule(g: GraphInputs) -> dict[str, Any]:
    ports = [{"port": GRPC_PORT, "protocol": "TCP"}]
    np = g.spec.network_policy
    clients = np.allowed_clients if np is not None else None
    if clients is None and g.spec.exposed:
        # Exposed on purpose (which needs authentication): every source, like the Service.
        return {"ports": ports}
    peers: list[dict[str, Any]] = [{"podSelector": {"matchLabels": selector_labels(g)}}]
    if g.spec.archival is not None:
        peers.append({"podSelector": {"matchLabels": {LABEL_ARCHIVAL: g.name}}})
    peers.extend([{"podSelector": {}}] if clients is None else clients)  # {}: the namespace
    return {"from": peers, "ports": ports}


def _metrics_peers(g: GraphInputs, env: RenderEnv) -> list[dict[str, Any]]:
    monitoring = g.spec.monitoring
    if monitoring is not None and monitoring.allowed_from is not None:
        return list(monitoring.allowed_from)
    return [
        {"namespaceSelector": {"matchLabels": {NAMESPACE_NAME_LABEL: ns}}}
        for ns in env.metrics_namespaces
    ]


def render_network_policy(g: GraphInputs, env: RenderEnv) -> dict[str, Any] | None:
    """Ingress to the graph's pods: gRPC from its clients, own pods and archival Job; the peer
    port from its own pods and the operator's (which moves shards between them); metrics
    from the scraping sources. None when the policy is
    switched off.

    Clients default to the graph's namespace, or to every source when a NodePort or
    LoadBalancer Service exposes the graph; the metrics port admits only the sources the graph
    or the installation names (none by default): the kubelet's probes on that port come from
    the node, which a NetworkPolicy never blocks.
    """
    np = g.spec.network_policy
    if np is not None and not np.enabled:
        return None
    ingress: list[dict[str, Any]] = [_grpc_rule(g)]
    if g.shard_map is not None:  # the peer port: the graph's own pods, and the operator's
        sources: list[dict[str, Any]] = [{"podSelector": {"matchLabels": selector_labels(g)}}]
        if env.operator_pods is not None:
            namespace, labels = env.operator_pods
            sources.append(
                {
                    "namespaceSelector": {"matchLabels": {NAMESPACE_NAME_LABEL: namespace}},
                    "podSelector": {"matchLabels": dict(labels)},
                }
            )
        ingress.append({"from": sources, "ports": [{"port": PEER_PORT, "protocol": "TCP"}]})
    metrics = _metrics_peers(g, env)
    if metrics:
        ingress.append({"from": metrics, "ports": [{"port": METRICS_PORT, "protocol": "TCP"}]})
    return {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "NetworkPolicy",
        "metadata": object_meta(g, Names(g.name).network_policy, "data-plane"),
        "spec": {
            "podSelector": {"matchLabels": selector_labels(g)},
            "policyTypes": ["Ingress"],
            "ingress": ingress,
        },
    }
