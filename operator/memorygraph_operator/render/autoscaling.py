"""HorizontalPodAutoscaler and PodDisruptionBudget: the two objects that govern pod counts."""

from __future__ import annotations

from typing import Any

from memorygraph_operator.api.base import GROUP, VERSION
from memorygraph_operator.render.context import GraphInputs
from memorygraph_operator.render.metadata import object_meta, selector_labels
from memorygraph_operator.render.names import Names
from memorygraph_operator.render.statefulset import statefulset_replicas

__all__ = ["render_hpa", "render_pdb"]


def render_hpa(g: GraphInputs) -> dict[str, Any] | None:
    """An autoscaling/v2 HPA on the graph's scale subresource, or None when autoscaling is off.

    The HPA sets the graph's ``spec.replicas``, never the StatefulSet's: every scale goes through
    the operator, like a ``kubectl scale mg``."""
    a = g.spec.autoscaling
    if a is None or not a.enabled:
        return None
    metrics: list[dict[str, Any]] = []
    if a.target_cpu_utilization_percentage is not None:
        metrics.append(
            {
                "type": "Resource",
                "resource": {
                    "name": "cpu",
                    "target": {
                        "type": "Utilization",
                        "averageUtilization": a.target_cpu_utilization_percentage,
                    },
                },
            }
        )
    metrics.extend(a.metrics or [])
    spec: dict[str, Any] = {
        "scaleTargetRef": {
            "apiVersion": f"{GROUP}/{VERSION}",
            "kind": "MemoryGraph",
            "name": g.name,
        },
        "minReplicas": a.min_replicas,
        "maxReplicas": a.max_replicas,
    }
    if metrics:
        spec["metrics"] = metrics
    return {
        "apiVersion": "autoscaling/v2",
        "kind": "HorizontalPodAutoscaler",
        "metadata": object_meta(g, Names(g.name).hpa, "autoscaling"),
        "spec": spec,
    }


def render_pdb(g: GraphInputs) -> dict[str, Any] | None:
    """A PodDisruptionBudget, or None when at most one pod is guaranteed to run.

    With a single pod, a budget of ``maxUnavailable: 1`` protects nothing and ``0`` would block
    node drains forever; either way it only gets in the cluster operator's way.
    """
    spec = g.spec
    pdb = spec.pod_disruption_budget
    if pdb is not None and not pdb.enabled:
        return None
    floor = (
        spec.autoscaling.min_replicas
        if spec.autoscaled and spec.autoscaling
        else statefulset_replicas(g)  # with the pods a held scale-in keeps
    )
    if floor <= 1:
        return None
    return {
        "apiVersion": "policy/v1",
        "kind": "PodDisruptionBudget",
        "metadata": object_meta(g, Names(g.name).pdb, "data-plane"),
        "spec": {
            "maxUnavailable": pdb.max_unavailable if pdb else 1,
            "selector": {"matchLabels": selector_labels(g)},
        },
    }
