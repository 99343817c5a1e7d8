"""Helpers of the handler tests: a stored graph, reconciling it, its conditions, Events, pods."""

from __future__ import annotations

import logging
from typing import Any

import kopf
from apiserver import ApiServer
from memorygraph_operator.handlers import reconcile_graph_by_name
from operator_support import GRAPHS, load_example

NS = "apps"
STS = "apps/v1/statefulsets"
log = logging.getLogger("test")


def _graph(api: ApiServer, spec: dict[str, Any] | None = None, **meta: Any) -> dict[str, Any]:
    manifest = load_example("memorygraph-minimal.yaml")
    manifest["spec"] = spec or {}
    manifest["metadata"].update(meta)
    return api.store(GRAPHS, manifest)


async def _reconcile(memo: kopf.Memo, name: str = "chat-memory") -> dict[str, Any] | None:
    return await reconcile_graph_by_name(memo, NS, name, log)


def _conditions(api: ApiServer, name: str = "chat-memory") -> dict[str, dict[str, Any]]:
    obj = api.read(GRAPHS, NS, name)
    assert obj is not None
    return {c["type"]: c for c in obj["status"]["conditions"]}


def _events(api: ApiServer) -> list[tuple[str, str]]:
    return [
        (e["type"], e["reason"])
        for (res, _, _), e in api.objects.items()
        if res.plural == "events" and not e.deleted
    ]


def _pods_ready(api: ApiServer, name: str = "chat-memory") -> None:
    """Play the StatefulSet controller: every desired pod is up to date and ready."""
    sts = api.read(STS, NS, name)
    assert sts is not None
    n = sts["spec"].get("replicas", 1)
    api.edit(
        STS,
        NS,
        name,
        {
            "status": {
                "observedGeneration": sts["metadata"]["generation"],
                "replicas": n,
                "readyReplicas": n,
                "updatedReplicas": n,
                "currentRevision": "r1",
                "updateRevision": "r1",
            }
        },
    )


def volumes_bound(api: ApiServer, pods: int, graph: str = "chat-memory") -> None:
    """Play the StatefulSet controller and a provisioner: the claims of ``pods`` pods, bound
    (the pods ran)."""
    for index in range(pods):
        claim = api.store(
            "v1/persistentvolumeclaims",
            {
                "metadata": {
                    "name": f"data-{graph}-{index}",
                    "namespace": NS,
                    "labels": {
                        "app.kubernetes.io/name": "memorygraph",
                        "memorygraph.io/graph": graph,
                    },
                }
            },
        )
        api.edit(
            "v1/persistentvolumeclaims",
            NS,
            claim["metadata"]["name"],
            {"status": {"phase": "Bound"}},
        )
