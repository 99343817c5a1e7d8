"""The metadata every child carries: labels, annotation keys and the owner reference.

Selector labels are immutable once a StatefulSet exists, and GitOps tools track objects by
label: a change here reaches every child of every graph, so it lives apart from the renderers.
"""

from __future__ import annotations

from typing import Any

from memorygraph_operator.api.base import API_VERSION, GROUP
from memorygraph_operator.render.context import GraphInputs

__all__ = [
    "ANNOTATION_CONFIG_HASH",
    "ANNOTATION_PAUSED",
    "ANNOTATION_RESTARTED_AT",
    "LABEL_ARCHIVAL",
    "LABEL_COMPONENT",
    "LABEL_GRAPH",
    "LABEL_MANAGED_BY",
    "LABEL_NAME",
    "MANAGED_BY",
    "archival_pod_labels",
    "child_labels",
    "object_meta",
    "owner_reference",
    "selector_labels",
]

MANAGED_BY = "memorygraph-operator"

LABEL_NAME = "app.kubernetes.io/name"
LABEL_COMPONENT = "app.kubernetes.io/component"
LABEL_MANAGED_BY = "app.kubernetes.io/managed-by"
# Deliberately not app.kubernetes.io/instance: Argo CD's label tracking uses that key, and a graph
# named like its Argo CD application would make Argo CD adopt (and prune) the children.
LABEL_GRAPH = f"{GROUP}/graph"
# Marks a graph's archival Job pods. They must not carry the graph's selector labels: the
# Services would route clients to them, and the HPA would count them (and their missing CPU
# requests) as data-plane pods.
LABEL_ARCHIVAL = f"{GROUP}/archival"

ANNOTATION_CONFIG_HASH = f"{GROUP}/config-hash"
ANNOTATION_RESTARTED_AT = f"{GROUP}/restartedAt"
ANNOTATION_PAUSED = f"{GROUP}/paused"


def selector_labels(g: GraphInputs) -> dict[str, str]:
    """Labels that select a graph's pods; immutable once the StatefulSet exists."""
    return {LABEL_NAME: "memorygraph", LABEL_GRAPH: g.name}


def child_labels(g: GraphInputs, component: str) -> dict[str, str]:
    """Labels of every child. The CR's own labels are never copied (GitOps tracking labels)."""
    return {
        **selector_labels(g),
        LABEL_COMPONENT: component,
        LABEL_MANAGED_BY: MANAGED_BY,
    }


def archival_pod_labels(g: GraphInputs) -> dict[str, str]:
    """Labels of a graph's archival Job pods: disjoint from :func:`selector_labels`."""
    return {
        LABEL_NAME: "memorygraph",
        LABEL_ARCHIVAL: g.name,
        LABEL_COMPONENT: "archival",
        LABEL_MANAGED_BY: MANAGED_BY,
    }


def owner_reference(g: GraphInputs) -> dict[str, Any]:
    """Controller reference to the graph: garbage collection and child-event routing."""
    return {
        "apiVersion": API_VERSION,
        "kind": "MemoryGraph",
        "name": g.name,
        "uid": g.uid,
        "controller": True,
        "blockOwnerDeletion": True,
    }


def object_meta(
    g: GraphInputs,
    name: str,
    component: str,
    labels: dict[str, str] | None = None,
    annotations: dict[str, str] | None = None,
) -> dict[str, Any]:
    """Metadata of a namespaced child owned by the graph."""
    meta: dict[str, Any] = {
        "name": name,
        "namespace": g.namespace,
        "labels": {**(labels or {}), **child_labels(g, component)},
        "ownerReferences": [owner_reference(g)],
    }
    if annotations:
        meta["annotations"] = dict(annotations)
    return meta
