"""Scenario 6: the operator killed in the middle of a reconcile converges when it comes back."""

from __future__ import annotations

import json
import time

from e2e_support import Cluster, OperatorProcess, eventually


def test_killed_mid_reconcile_converges_without_duplicates_or_restarts(
    operator: OperatorProcess, cluster: Cluster, namespace: str
) -> None:
    try:
        started = operator.count(r"Handler 'on_graph' is invoked")
        cluster.apply(
            {
                "apiVersion": "memorygraph.io/v1alpha1",
                "kind": "MemoryGraph",
                "metadata": {"name": "crash", "namespace": namespace},
                "spec": {"replicas": 2},
            }
        )
        eventually(
            lambda: operator.count(r"Handler 'on_graph' is invoked") > started,
            "the reconcile to start",
            interval=0.02,
        )
        operator.kill()
        # The reconcile writes the status last: without one, it was cut off midway.
        assert "observedGeneration" not in (cluster.graph(namespace, "crash").get("status") or {})
    finally:
        operator.start()

    graph = cluster.wait_graph(namespace, "crash")
    assert cluster.children(namespace, "crash") == {
        "ConfigMap": ["crash-config", "crash-shards"],
        "NetworkPolicy": ["crash"],
        "PodDisruptionBudget": ["crash"],
        "Secret": ["crash-api-keys", "crash-peer"],
        "Service": ["crash", "crash-headless"],
        "StatefulSet": ["crash"],
    }
    pods = eventually(
        lambda: (p := cluster.pods(namespace, "crash")) and len(p) == 2 and p, "two pods"
    )
    sts = cluster.get("statefulset", "crash", namespace)
    assert sts is not None
    kinds = "statefulsets,services,configmaps,poddisruptionbudgets"
    out = cluster.kubectl("get", kinds, "-n", namespace, "-o", "json")
    for child in json.loads(out)["items"]:
        if child["metadata"]["name"] == "kube-root-ca.crt":
            continue
        owners = [r for r in child["metadata"].get("ownerReferences", []) if r.get("controller")]
        assert [o["uid"] for o in owners] == [graph["metadata"]["uid"]], child["metadata"]["name"]

    # Another restart with everything in place changes nothing: same template, same pods.
    operator.stop()
    operator.start()
    eventually(
        lambda: "Handler 'on_graph' succeeded" in operator.log().split("--- start")[-1],
        "the restarted operator resuming the graphs",
    )
    time.sleep(3)
    again = cluster.get("statefulset", "crash", namespace)
    assert again is not None
    assert again["metadata"]["generation"] == sts["metadata"]["generation"]
    assert again["status"]["updateRevision"] == sts["status"]["updateRevision"]
    assert {p["metadata"]["uid"] for p in cluster.pods(namespace, "crash")} == {
        p["metadata"]["uid"] for p in pods
    }
    assert cluster.wait_graph(namespace, "crash")["status"] == graph["status"]
