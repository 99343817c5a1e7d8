"""Pure renderers: one module per child kind, each returning the object or None ("must not exist").

Nothing in this package performs I/O, reads the clock or the process environment, or imports
kopf or the Kubernetes client; :mod:`memorygraph_operator.reconcile` applies what it returns.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from memorygraph_operator.render.archival import render_archival_cronjob
from memorygraph_operator.render.autoscaling import render_hpa, render_pdb
from memorygraph_operator.render.config import config_hash, render_configmap
from memorygraph_operator.render.context import GraphInputs, NamedPlugin, PendingMove, RenderEnv
from memorygraph_operator.render.monitoring import render_service_monitor
from memorygraph_operator.render.names import Names
from memorygraph_operator.render.networkpolicy import render_network_policy
from memorygraph_operator.render.secrets import (
    needs_generated_auth_secret,
    render_auth_secret,
    render_peer_secret,
)
from memorygraph_operator.render.services import render_client_service, render_headless_service
from memorygraph_operator.render.shardmap import (
    MapPlan,
    ShardMap,
    parse_move,
    parse_shard_map,
    plan_shard_map,
    render_shard_map,
)
from memorygraph_operator.render.statefulset import render_statefulset

__all__ = [
    "Child",
    "GraphInputs",
    "MapPlan",
    "NamedPlugin",
    "Names",
    "PendingMove",
    "RenderEnv",
    "ShardMap",
    "config_hash",
    "needs_generated_auth_secret",
    "parse_move",
    "parse_shard_map",
    "plan_shard_map",
    "render_archival_cronjob",
    "render_auth_secret",
    "render_children",
    "render_client_service",
    "render_configmap",
    "render_headless_service",
    "render_hpa",
    "render_network_policy",
    "render_pdb",
    "render_peer_secret",
    "render_service_monitor",
    "render_shard_map",
    "render_statefulset",
]


@dataclass(frozen=True)
class Child:
    """One child slot of a graph: its identity and desired body (None = must not exist)."""

    api_version: str
    kind: str
    name: str
    body: dict[str, Any] | None


def render_children(g: GraphInputs, env: RenderEnv) -> list[Child]:
    """Every child the operator applies, in apply order (config before the pods that read it).

    The generated auth and peer Secrets are not here: they are created once, never re-applied
    (see :func:`render_auth_secret`).
    """
    n = Names(g.name)
    return [
        Child("v1", "ConfigMap", n.shard_map, render_shard_map(g)),
        Child("v1", "ConfigMap", n.configmap, render_configmap(g)),
        Child("v1", "Service", n.headless_service, render_headless_service(g)),
        Child("v1", "Service", n.service, render_client_service(g)),
        Child("apps/v1", "StatefulSet", n.statefulset, render_statefulset(g, env)),
        Child("autoscaling/v2", "HorizontalPodAutoscaler", n.hpa, render_hpa(g)),
        Child("policy/v1", "PodDisruptionBudget", n.pdb, render_pdb(g)),
        Child("batch/v1", "CronJob", n.cronjob, render_archival_cronjob(g, env)),
        Child(
            "networking.k8s.io/v1",
            "NetworkPolicy",
            n.network_policy,
            render_network_policy(g, env),
        ),
        Child(
            "monitoring.coreos.com/v1",
            "ServiceMonitor",
            n.service_monitor,
            render_service_monitor(g, env),
        ),
    ]
