"""Inputs shared by every renderer: the graph being rendered, the environment, names and labels.

Renderers are pure: everything they may depend on is in :class:`GraphInputs` or
:class:`RenderEnv`. Nothing here reads the clock, the process environment or the API.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import Any

from memorygraph_operator.api.base import API_VERSION, GROUP
from memorygraph_operator.api.memorygraph import MemoryGraphSpec
from memorygraph_operator.api.plugin import PluginSpec

__all__ = [
    "ANNOTATION_CONFIG_HASH",
    "ANNOTATION_PAUSED",
    "ANNOTATION_RESTARTED_AT",
    "CONFIG_DIR",
    "DATA_MOUNT",
    "DEFAULT_IMAGE",
    "FIELD_MANAGER",
    "GRPC_PORT",
    "LABEL_ARCHIVAL",
    "LABEL_COMPONENT",
    "LABEL_GRAPH",
    "LABEL_MANAGED_BY",
    "LABEL_NAME",
    "MANAGED_BY",
    "METRICS_PORT",
    "RUN_AS",
    "GraphInputs",
    "NamedPlugin",
    "Names",
    "RenderEnv",
    "archival_pod_labels",
    "child_labels",
    "container_security_context",
    "object_meta",
    "owner_reference",
    "pod_security_context",
    "selector_labels",
    "short_hash",
]

DEFAULT_IMAGE = "ghcr.io/memorygraph/memorygraph:0.1.0"
FIELD_MANAGER = "memorygraph-operator"
MANAGED_BY = "memorygraph-operator"
GRPC_PORT = 50051
METRICS_PORT = 9090
RUN_AS = 65532
CONFIG_DIR = "/etc/memorygraph"
DATA_MOUNT = "/var/lib/memorygraph"

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


@dataclass(frozen=True)
class RenderEnv:
    """What the renderers need to know about the cluster and the operator installation."""

    default_image: str = DEFAULT_IMAGE
    service_monitor_available: bool = False
    cluster_domain: str = "cluster.local"


@dataclass(frozen=True)
class NamedPlugin:
    """A Plugin resource selected by a graph: its name and validated spec."""

    name: str
    spec: PluginSpec


@dataclass(frozen=True)
class GraphInputs:
    """One MemoryGraph as the renderers see it."""

    name: str
    namespace: str
    uid: str
    spec: MemoryGraphSpec
    plugins: tuple[NamedPlugin, ...] = ()
    restarted_at: str | None = None

    def image_in(self, env: RenderEnv) -> str:
        """Image of the graph's pods in ``env``."""
        return self.spec.image or env.default_image


class Names:
    """Names of every child of a graph, in one place so prune and render agree."""

    def __init__(self, graph: str) -> None:
        self.statefulset = graph
        self.service = graph
        self.headless_service = f"{graph}-headless"
        self.configmap = f"{graph}-config"
        self.hpa = graph
        self.pdb = graph
        self.service_monitor = graph
        self.cronjob = f"{graph}-archival"
        self.auth_secret = f"{graph}-api-keys"
        self.network_policy = graph


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


def pod_security_context() -> dict[str, Any]:
    """Pod-level settings of the restricted Pod Security Standard."""
    return {
        "runAsNonRoot": True,
        "runAsUser": RUN_AS,
        "runAsGroup": RUN_AS,
        "fsGroup": RUN_AS,
        "fsGroupChangePolicy": "OnRootMismatch",
        "seccompProfile": {"type": "RuntimeDefault"},
    }


def container_security_context() -> dict[str, Any]:
    """Container-level settings of the restricted Pod Security Standard."""
    return {
        "allowPrivilegeEscalation": False,
        "readOnlyRootFilesystem": True,
        "runAsNonRoot": True,
        "capabilities": {"drop": ["ALL"]},
    }


def short_hash(data: Any) -> str:
    """A stable 16-hex-digit digest of JSON-able data (key order does not matter)."""
    text = data if isinstance(data, str) else json.dumps(data, sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:16]
