"""Scenario 6: the operator killed in the middle of a reconcile converges when it comes back."""

from __future__ import annotations

import time

from e2e_support import Cluster, OperatorProcess, condition, eventually


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
        graph = cluster.graph(namespace, "crash")
        assert condition(graph, "Ready").get("status") != "True", "killed too late"
    finally:
        operator.start()

    graph = cluster.wait_graph(namespace, "crash")
    assert cluster.children(namespace, "crash") == {
        "ConfigMap": ["crash-config"],
        "PodDisruptionBudget": ["crash"],
        "Service": ["crash", "crash-headless"],
        "StatefulSet": ["crash"],
    }
    pods = eventually(
        lambda: (p := cluster.pods(namespace, "crash")) and len(p) == 2 and p, "two pods"
    )
    sts = cluster.get("statefulset", "crash", namespace)
    assert sts is not None

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
