"""Scenario 10: what happens to the data volumes when a graph is deleted."""

from __future__ import annotations

import time

import pytest
from e2e_support import Cluster, OperatorProcess, eventually


@pytest.mark.parametrize(("policy", "kept"), [("Retain", True), ("Delete", False)])
def test_deletion_policy_decides_the_fate_of_the_volumes(
    operator: OperatorProcess, cluster: Cluster, namespace: str, policy: str, kept: bool
) -> None:
    cluster.apply(
        {
            "apiVersion": "memorygraph.io/v1alpha1",
            "kind": "MemoryGraph",
            "metadata": {"name": "vol", "namespace": namespace},
            "spec": {"replicas": 2, "storage": {"size": "1Gi", "deletionPolicy": policy}},
        }
    )
    cluster.wait_graph(namespace, "vol")
    claims = eventually(
        lambda: (
            (c := cluster.objects("pvc", namespace))
            and len(c) == 2
            and all(x["status"].get("phase") == "Bound" for x in c)
            and c
        ),
        "two bound claims",
    )
    assert sorted(c["metadata"]["name"] for c in claims) == ["data-vol-0", "data-vol-1"]
    sts = cluster.get("statefulset", "vol", namespace)
    assert sts is not None
    assert sts["spec"]["persistentVolumeClaimRetentionPolicy"]["whenDeleted"] == policy

    cluster.kubectl("delete", "mg", "vol", "-n", namespace, "--wait=true", "--timeout=60s")
    eventually(lambda: cluster.get("statefulset", "vol", namespace) is None, "the StatefulSet gone")
    eventually(lambda: not cluster.pods(namespace, "vol"), "the pods gone")
    if kept:
        time.sleep(5)  # give the garbage collector time to do what it must not do
        names = sorted(c["metadata"]["name"] for c in cluster.objects("pvc", namespace))
        assert names == ["data-vol-0", "data-vol-1"]
    else:
        eventually(lambda: cluster.objects("pvc", namespace) == [], "the claims deleted")
