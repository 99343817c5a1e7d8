"""Operator settings from the environment, and how kopf is configured with them.

The Helm chart sets these variables; defaults suit a local ``memorygraph-operator`` run.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass

import kopf

from memorygraph_operator.api.base import GROUP
from memorygraph_operator.render.image import DEFAULT_IMAGE

__all__ = ["OperatorConfig", "configure_kopf"]


@dataclass(frozen=True)
class OperatorConfig:
    """What the operator process needs to know about its installation."""

    default_image: str = DEFAULT_IMAGE
    namespaces: tuple[str, ...] = ()  # empty: the whole cluster
    metrics_port: int = 8080
    health_port: int = 8081
    resync_seconds: float = 300.0
    # Graphs reconciled at once; the others wait their turn, first come first served.
    concurrent_reconciles: int = 8
    # All interfaces in a pod; a process run on a workstation can keep them on loopback.
    bind_address: str = "0.0.0.0"
    # Namespaces whose pods may scrape every graph's metrics port (the graphs' NetworkPolicy).
    metrics_namespaces: tuple[str, ...] = ()
    # The operator's own pods (namespace, labels), admitted to the graphs' peer port by their
    # NetworkPolicy; None when not set (an operator run outside the cluster).
    operator_pods: tuple[str, tuple[tuple[str, str], ...]] | None = None

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> OperatorConfig:
        """Read ``MEMORYGRAPH_*`` variables (and ``WATCH_NAMESPACE``; lists comma-separated)."""
        env = os.environ if environ is None else environ

        def names(variable: str) -> tuple[str, ...]:
            return tuple(n.strip() for n in env.get(variable, "").split(",") if n.strip())

        concurrent = int(env.get("MEMORYGRAPH_CONCURRENT_RECONCILES", "8"))
        operator_pods = None
        own_namespace = env.get("MEMORYGRAPH_OPERATOR_NAMESPACE", "").strip()
        labels = names("MEMORYGRAPH_OPERATOR_POD_LABELS")
        if own_namespace and labels:
            pairs = [label.partition("=") for label in labels]
            if any(not k or not sep or not v for k, sep, v in pairs):
                raise ValueError("MEMORYGRAPH_OPERATOR_POD_LABELS must be key=value,...")
            operator_pods = (own_namespace, tuple((k, v) for k, _, v in pairs))
        if concurrent < 1:
            raise ValueError("MEMORYGRAPH_CONCURRENT_RECONCILES must be at least 1")
        return cls(
            default_image=env.get("MEMORYGRAPH_DEFAULT_IMAGE", DEFAULT_IMAGE),
            namespaces=names("WATCH_NAMESPACE"),
            metrics_namespaces=names("MEMORYGRAPH_METRICS_NAMESPACES"),
            metrics_port=int(env.get("MEMORYGRAPH_METRICS_PORT", "8080")),
            health_port=int(env.get("MEMORYGRAPH_HEALTH_PORT", "8081")),
            resync_seconds=float(env.get("MEMORYGRAPH_RESYNC_SECONDS", "300")),
            concurrent_reconciles=concurrent,
            bind_address=env.get("MEMORYGRAPH_BIND_ADDRESS", "0.0.0.0"),
            operator_pods=operator_pods,
        )


def configure_kopf(settings: kopf.OperatorSettings) -> None:
    """kopf settings shared by the real operator and the tests.

    kopf's own success/failure Events are turned off: the operator posts curated Events on
    condition changes instead. Handler progress lives in annotations under our group so status
    stays ours alone.
    """
    settings.posting.enabled = False
    settings.persistence.finalizer = f"{GROUP}/finalizer"
    settings.persistence.progress_storage = kopf.AnnotationsProgressStorage(prefix=GROUP)
    settings.persistence.diffbase_storage = kopf.AnnotationsDiffBaseStorage(
        prefix=GROUP, key="last-handled-configuration"
    )
    settings.execution.max_workers = 4
    settings.watching.server_timeout = 270
    settings.networking.request_timeout = 60
    settings.peering.standalone = True
