"""Scenarios 2, 4, 5 and 7: a MemoryGraph's life on a real cluster, pods faked by kwok."""

from __future__ import annotations

import json
import time
from typing import Any

import pytest
from e2e_support import (
    Cluster,
    CommandFailed,
    OperatorProcess,
    condition,
    eventually,
    example,
    watching,
)


def _graph(namespace: str, name: str, **spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": "memorygraph.io/v1alpha1",
        "kind": "MemoryGraph",
        "metadata": {"name": name, "namespace": namespace},
        "spec": spec,
    }


def _ready_pods(cluster: Cluster, namespace: str, graph: str, count: int) -> list[dict[str, Any]]:
    def probe() -> list[dict[str, Any]] | None:
        pods = [
            p
            for p in cluster.pods(namespace, graph)
            if not p["metadata"].get("deletionTimestamp")
            and condition(p, "Ready").get("status") == "True"
        ]
        return pods if len(pods) == count else None

    return eventually(probe, f"{count} ready pods of {graph}")


def _uids(pods: list[dict[str, Any]]) -> set[str]:
    return {p["metadata"]["uid"] for p in pods}


def test_minimal_graph_gets_its_children_and_becomes_ready(
    operator: OperatorProcess, cluster: Cluster, namespace: str
) -> None:
    cluster.apply(example("memorygraph-minimal.yaml", namespace))
    graph = cluster.wait_graph(namespace, "chat-memory")

    # Safe by default: generated API keys and a NetworkPolicy.
    assert cluster.children(namespace, "chat-memory") == {
        "ConfigMap": ["chat-memory-config", "chat-memory-shards"],
        "NetworkPolicy": ["chat-memory"],
        "Secret": ["chat-memory-api-keys", "chat-memory-peer"],
        "Service": ["chat-memory", "chat-memory-headless"],
        "StatefulSet": ["chat-memory"],
    }
    pods = _ready_pods(cluster, namespace, "chat-memory", 1)
    assert pods[0]["status"]["phase"] == "Running"
    assert pods[0]["spec"]["nodeName"].startswith("kwok-node-")
    claim = cluster.get("pvc", "data-chat-memory-0", namespace)
    assert claim is not None
    assert eventually(
        lambda: (
            (cluster.get("pvc", "data-chat-memory-0", namespace) or {})
            .get("status", {})
            .get("phase")
            == "Bound"
        ),
        "the data volume bound",
    )

    status = graph["status"]
    assert status["observedGeneration"] == graph["metadata"]["generation"]
    assert condition(graph, "Ready")["reason"] == "Ready"
    assert condition(graph, "Available")["status"] == "True"
    assert condition(graph, "Degraded")["status"] == "False"
    assert status["readyReplicas"] == 1
    assert status["endpoints"]["grpc"] == f"chat-memory.{namespace}.svc:50051"

    table = cluster.kubectl("get", "mg", "-n", namespace, "-o", "wide").splitlines()
    assert table[0].split() == [
        "NAME",
        "READY",
        "REPLICAS",
        "IMAGE",
        "STORAGE",
        "REBALANCING",
        "AGE",
        "REASON",
        "SHARDS",
    ]
    row = table[1].split()
    assert row[0] == "chat-memory"
    assert row[1:3] == ["True", "1"]
    assert row[4:6] == ["10Gi", "False"]
    assert row[-2:] == ["Ready", "64"]  # one pod owning the 64 shards


def test_optional_children_follow_the_spec(
    operator: OperatorProcess, cluster: Cluster, namespace: str
) -> None:
    cluster.create_secret(namespace, "vault", {"token": "t"})
    cluster.apply(
        _graph(
            namespace,
            "full",
            replicas=2,
            monitoring={"serviceMonitor": {"enabled": True}},
            archival={
                "schedule": "30 2 * * *",
                "destination": {
                    "vault": {
                        "url": "https://vault.example.com",
                        "secretRef": {"name": "vault", "key": "token"},
                    }
                },
            },
        )
    )
    cluster.wait_graph(namespace, "full")
    assert cluster.children(namespace, "full") == {
        "ConfigMap": ["full-config", "full-shards"],
        "CronJob": ["full-archival"],
        "NetworkPolicy": ["full"],
        "PodDisruptionBudget": ["full"],
        "Secret": ["full-api-keys", "full-peer"],
        "Service": ["full", "full-headless"],
        "ServiceMonitor": ["full"],
        "StatefulSet": ["full"],
    }
    monitor = cluster.get("servicemonitor", "full", namespace)
    assert monitor is not None
    assert monitor["spec"]["selector"]["matchLabels"]["memorygraph.io/graph"] == "full"

    # Without extras (and without a disruption budget): the optional children are pruned.
    cluster.kubectl(
        "patch",
        "mg",
        "full",
        "-n",
        namespace,
        "--type",
        "json",
        "-p",
        json.dumps(
            [
                {"op": "add", "path": "/spec/podDisruptionBudget", "value": {"enabled": False}},
                {"op": "remove", "path": "/spec/monitoring"},
                {"op": "remove", "path": "/spec/archival"},
            ]
        ),
    )
    cluster.wait_graph(namespace, "full")
    kept = {"ConfigMap", "NetworkPolicy", "Secret", "Service", "StatefulSet"}
    assert eventually(
        lambda: set(cluster.children(namespace, "full")) == kept,
        "the PodDisruptionBudget, ServiceMonitor and CronJob pruned",
    )


def test_kubectl_scale_and_the_autoscaler_scale_the_graph(
    operator: OperatorProcess, cluster: Cluster, namespace: str
) -> None:
    cluster.apply(_graph(namespace, "scaled"))
    cluster.wait_graph(namespace, "scaled")

    cluster.kubectl("scale", "mg/scaled", "-n", namespace, "--replicas=3")
    graph = cluster.wait_graph(namespace, "scaled")
    assert graph["spec"]["replicas"] == 3
    _ready_pods(cluster, namespace, "scaled", 3)
    assert cluster.wait_graph(namespace, "scaled")["status"]["readyReplicas"] == 3
    scale = json.loads(
        cluster.kubectl(
            "get",
            "--raw",
            f"/apis/memorygraph.io/v1alpha1/namespaces/{namespace}/memorygraphs/scaled/scale",
        )
    )
    assert scale["spec"]["replicas"] == 3
    assert scale["status"]["replicas"] == 3
    assert "memorygraph.io/graph=scaled" in scale["status"]["selector"]

    # Autoscaling on: the HPA targets the graph's scale subresource, and the operator keeps
    # applying the graph's replicas to the StatefulSet.
    cluster.kubectl(
        "patch",
        "mg",
        "scaled",
        "-n",
        namespace,
        "--type",
        "merge",
        "-p",
        json.dumps(
            {"spec": {"autoscaling": {"enabled": True, "minReplicas": 2, "maxReplicas": 4}}}
        ),
    )
    cluster.wait_graph(namespace, "scaled")
    hpa = eventually(lambda: cluster.get("hpa", "scaled", namespace), "the HPA")
    assert hpa["spec"]["scaleTargetRef"] == {
        "apiVersion": "memorygraph.io/v1alpha1",
        "kind": "MemoryGraph",
        "name": "scaled",
    }
    assert (hpa["spec"]["minReplicas"], hpa["spec"]["maxReplicas"]) == (2, 4)

    def able_to_scale() -> bool:
        """The real HPA controller read the graph's scale subresource (its replicas and pod
        selector); without metrics it has no reason to change them."""
        found = cluster.get("hpa", "scaled", namespace) or {}
        return any(
            c["type"] == "AbleToScale" and c["status"] == "True"
            for c in (found.get("status") or {}).get("conditions") or []
        )

    eventually(able_to_scale, "the HPA reading the MemoryGraph's scale subresource")

    def sts_replicas() -> int:
        return int((cluster.get("statefulset", "scaled", namespace) or {})["spec"]["replicas"])

    # Scaling the graph, as the HPA does, goes through the operator to the StatefulSet; past
    # the bounds the API server refuses it.
    cluster.kubectl("scale", "mg/scaled", "-n", namespace, "--replicas=4")
    eventually(lambda: sts_replicas() == 4, "the StatefulSet following the graph")
    with pytest.raises(CommandFailed) as refused:
        cluster.kubectl("scale", "mg/scaled", "-n", namespace, "--replicas=5")
    assert "replicas must lie within autoscaling" in str(refused.value.stderr)
    # Scaling the StatefulSet behind the operator's back, even within the bounds, is undone
    # (not taken into the graph: only an earlier version's autoscaling is).
    cluster.kubectl("scale", "statefulset/scaled", "-n", namespace, "--replicas=3")
    eventually(lambda: sts_replicas() == 4, "the operator restoring the graph's replicas")
    assert cluster.wait_graph(namespace, "scaled")["spec"]["replicas"] == 4
    # A scale-in removes pods only once they said they own no shard; kwok's pods never answer
    # (nor can shards move onto them), and the graph says so.
    cluster.kubectl("scale", "mg/scaled", "-n", namespace, "--replicas=2")
    waiting = cluster.wait_graph(namespace, "scaled")  # every shard served: Ready
    rebalancing = condition(waiting, "Rebalancing")
    assert (rebalancing["status"], rebalancing["reason"]) == ("True", "WaitingForPods")
    assert "pod 1:" in rebalancing["message"]  # a move to pod 1, and pods 2 and 3 leaving
    assert waiting["spec"]["replicas"] == 2 and sts_replicas() == 4


def test_image_change_rolls_out_and_label_change_restarts_nothing(
    operator: OperatorProcess, cluster: Cluster, namespace: str
) -> None:
    cluster.apply(_graph(namespace, "roll", replicas=2, image="registry.local/memorygraph:1"))
    cluster.wait_graph(namespace, "roll")
    pods = _ready_pods(cluster, namespace, "roll", 2)
    assert cluster.graph(namespace, "roll")["status"]["currentImage"] == (
        "registry.local/memorygraph:1"
    )

    with watching(cluster, namespace, "memorygraphs.memorygraph.io", "roll") as versions:
        cluster.kubectl(
            "patch",
            "mg",
            "roll",
            "-n",
            namespace,
            "--type",
            "merge",
            "-p",
            json.dumps({"spec": {"image": "registry.local/memorygraph:2"}}),
        )
        graph = cluster.wait_graph(namespace, "roll")
        eventually(
            lambda: (
                cluster.graph(namespace, "roll")["status"].get("currentImage")
                == "registry.local/memorygraph:2"
            ),
            "currentImage after the rollout",
        )
    progressing = [
        v for v in versions if condition(v, "Progressing").get("reason") == "RolloutInProgress"
    ]
    assert progressing, "the graph never reported the rollout as Progressing"
    assert condition(progressing[0], "Ready")["status"] == "False"
    assert condition(graph, "Progressing")["status"] == "False"
    new_pods = _ready_pods(cluster, namespace, "roll", 2)
    assert not _uids(new_pods) & _uids(pods), "every pod was replaced"
    assert {p["spec"]["containers"][0]["image"] for p in new_pods} == {
        "registry.local/memorygraph:2"
    }

    sts = cluster.get("statefulset", "roll", namespace)
    assert sts is not None
    before = operator.count(r"Handler 'on_graph' succeeded")
    cluster.kubectl("label", "mg/roll", "-n", namespace, "argocd.argoproj.io/instance=roll")
    eventually(
        lambda: operator.count(r"Handler 'on_graph' succeeded") > before,
        "a reconcile after the label change",
    )
    after = cluster.get("statefulset", "roll", namespace)
    assert after is not None
    assert after["metadata"]["generation"] == sts["metadata"]["generation"]
    assert "argocd.argoproj.io/instance" not in after["metadata"].get("labels", {})
    assert "argocd.argoproj.io/instance" not in after["spec"]["template"]["metadata"]["labels"]
    assert _uids(cluster.pods(namespace, "roll")) == _uids(new_pods)


def test_deleted_children_come_back_unless_paused(
    operator: OperatorProcess, cluster: Cluster, namespace: str
) -> None:
    cluster.apply(_graph(namespace, "heal"))
    cluster.wait_graph(namespace, "heal")

    for kind, name in (
        ("statefulset", "heal"),
        ("service", "heal"),
        ("service", "heal-headless"),
        ("configmap", "heal-config"),
    ):
        uid = (cluster.get(kind, name, namespace) or {})["metadata"]["uid"]
        cluster.kubectl("delete", kind, name, "-n", namespace, "--wait=true")
        eventually(
            lambda kind=kind, name=name, uid=uid: (
                (cluster.get(kind, name, namespace) or {}).get("metadata", {}).get("uid", uid)
                != uid
            ),
            f"{kind}/{name} recreated",
        )
    cluster.wait_graph(namespace, "heal")

    cluster.kubectl("annotate", "mg/heal", "-n", namespace, "memorygraph.io/paused=true")
    paused = cluster.wait_condition(namespace, "heal", "Paused", status="True")
    assert condition(paused, "Paused")["reason"] == "PauseAnnotation"
    paused_total = "memorygraph_operator_reconcile_total"
    before = operator.metric(paused_total, kind="MemoryGraph", result="paused")
    cluster.kubectl("delete", "configmap", "heal-config", "-n", namespace)
    # The deletion reaches the operator (a paused reconcile is counted) but nothing is repaired.
    eventually(
        lambda: operator.metric(paused_total, kind="MemoryGraph", result="paused") > before,
        "a paused reconcile after the deletion",
    )
    time.sleep(3)
    assert cluster.get("configmap", "heal-config", namespace) is None

    cluster.kubectl("annotate", "mg/heal", "-n", namespace, "memorygraph.io/paused-")
    eventually(lambda: cluster.get("configmap", "heal-config", namespace), "the repair on resume")
    resumed = cluster.wait_graph(namespace, "heal")
    assert condition(resumed, "Paused").get("status", "False") == "False"
