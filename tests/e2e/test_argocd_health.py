"""Scenario 11: the Argo CD health check (docs/argocd/health.lua) on live MemoryGraphs."""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import lupa
from e2e_support import ROOT, Cluster, OperatorProcess, condition, eventually

HEALTH_LUA = (ROOT / "docs" / "argocd" / "health.lua").read_text()
CRD = "memorygraphs.memorygraph.io"
BOUNDS_RULE = "replicas must lie within autoscaling.minReplicas and autoscaling.maxReplicas"


def _to_lua(lua: Any, value: Any) -> Any:
    if isinstance(value, dict):
        return lua.table_from({k: _to_lua(lua, v) for k, v in value.items()})
    if isinstance(value, list):
        return lua.table_from([_to_lua(lua, v) for v in value])
    return value


def health(obj: dict[str, Any]) -> tuple[str, str]:
    """Run health.lua the way Argo CD does: the live object as global ``obj``."""
    lua = lupa.LuaRuntime(unpack_returned_tuples=True)
    lua.globals().obj = _to_lua(lua, obj)
    result = lua.execute(HEALTH_LUA)
    return str(result["status"]), str(result["message"])


def _health_becomes(cluster: Cluster, namespace: str, name: str, expected: str) -> str:
    def probe() -> str | None:
        status, message = health(cluster.graph(namespace, name))
        return message if status == expected else None

    return str(eventually(probe, f"Argo CD health {expected} for {name}"))


@contextmanager
def _without_bounds_rule(cluster: Cluster) -> Iterator[None]:
    """The CRD without its replicas-within-bounds rule, as an older CRD would have been."""
    crd = cluster.get("crd", CRD)
    assert crd is not None
    rules = crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"][
        "x-kubernetes-validations"
    ]
    path = "/spec/versions/0/schema/openAPIV3Schema/properties/spec/x-kubernetes-validations"
    others = [r for r in rules if r["message"] != BOUNDS_RULE]
    assert len(others) == len(rules) - 1
    # An emptied list would be dropped by the API server, so the field goes instead.
    loosen = (
        {"op": "replace", "path": path, "value": others}
        if others
        else {"op": "remove", "path": path}
    )
    cluster.kubectl("patch", "crd", CRD, "--type", "json", "-p", json.dumps([loosen]))
    try:
        yield
    finally:
        restore = {"op": "add", "path": path, "value": rules}
        cluster.kubectl("patch", "crd", CRD, "--type", "json", "-p", json.dumps([restore]))


def test_health_follows_the_graph_through_its_stages(
    operator: OperatorProcess, cluster: Cluster, namespace: str
) -> None:
    # No node matches the selector: the pod stays Pending and the rollout in progress.
    cluster.apply(
        {
            "apiVersion": "memorygraph.io/v1alpha1",
            "kind": "MemoryGraph",
            "metadata": {"name": "argo", "namespace": namespace},
            "spec": {"podTemplate": {"nodeSelector": {"e2e.memorygraph.io/none": "x"}}},
        }
    )
    graph = cluster.wait_graph(namespace, "argo", ready="False")
    assert condition(graph, "Progressing")["status"] == "True"
    assert health(graph)[0] == "Progressing"

    cluster.kubectl(
        "patch",
        "mg",
        "argo",
        "-n",
        namespace,
        "--type",
        "json",
        "-p",
        json.dumps([{"op": "remove", "path": "/spec/podTemplate"}]),
    )
    _health_becomes(cluster, namespace, "argo", "Healthy")

    cluster.kubectl("annotate", "mg/argo", "-n", namespace, "memorygraph.io/paused=true")
    cluster.wait_condition(namespace, "argo", "Paused", status="True")
    assert health(cluster.graph(namespace, "argo"))[0] == "Suspended"
    cluster.kubectl("annotate", "mg/argo", "-n", namespace, "memorygraph.io/paused-")
    _health_becomes(cluster, namespace, "argo", "Healthy")

    # A spec the current CRD rejects but an older one let in: the operator flags it.
    with _without_bounds_rule(cluster):
        eventually(
            lambda: _created(
                cluster,
                {
                    "apiVersion": "memorygraph.io/v1alpha1",
                    "kind": "MemoryGraph",
                    "metadata": {"name": "argo-invalid", "namespace": namespace},
                    "spec": {
                        "replicas": 5,
                        "autoscaling": {"enabled": True, "minReplicas": 1, "maxReplicas": 3},
                    },
                },
            ),
            "the API server accepting the graph under the older rules",
        )
    message = _health_becomes(cluster, namespace, "argo-invalid", "Degraded")
    invalid = cluster.graph(namespace, "argo-invalid")
    assert condition(invalid, "Ready")["reason"] == "InvalidSpec"
    assert "replicas" in message
    assert cluster.get("statefulset", "argo-invalid", namespace) is None


def _created(cluster: Cluster, obj: dict[str, Any]) -> bool:
    try:
        cluster.kubectl("create", "-f", "-", input=json.dumps(obj))
    except Exception as exc:
        if "must lie within" in str(exc):
            return False  # the API server has not picked up the loosened CRD yet
        raise
    return True
