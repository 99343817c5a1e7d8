"""The operator as users run it: the chart's Deployment, with the project's own image, on a node
that really runs it."""

from __future__ import annotations

from typing import Any

from e2e_support import OPERATOR_NAMESPACE, RELEASE, Cluster, condition, eventually
from real_pods import ClientPod, RealNode, exec_in, probe_results, running_pod

POD_SELECTOR = f"app.kubernetes.io/name=memorygraph-operator,app.kubernetes.io/instance={RELEASE}"


def _operator_pod(cluster: Cluster) -> dict[str, Any]:
    pods = [
        p
        for p in cluster.objects("pods", OPERATOR_NAMESPACE, POD_SELECTOR)
        if not p["metadata"].get("deletionTimestamp")
    ]
    assert len(pods) == 1, [p["metadata"]["name"] for p in pods]
    return running_pod(cluster, OPERATOR_NAMESPACE, pods[0]["metadata"]["name"])


def test_the_chart_runs_the_operator_with_its_own_image_and_its_probes_pass(
    cluster_operator: RealNode, cluster: Cluster, pods_namespace: str
) -> None:
    pod = _operator_pod(cluster)
    name = pod["metadata"]["name"]
    assert pod["spec"]["nodeName"] == cluster_operator.name
    assert pod["spec"]["serviceAccountName"] == RELEASE
    (status,) = pod["status"]["containerStatuses"]
    assert status["image"] == cluster_operator.images["memorygraph"]
    assert status["ready"] and "running" in status["state"]

    # The kubelet's liveness probe really reaches /healthz: it counts successes, never a failure.
    results = eventually(
        lambda: (
            (r := probe_results(cluster, cluster_operator.name, OPERATOR_NAMESPACE, name)).get(
                "Liveness/successful"
            )
            and r
        ),
        "a successful liveness probe of the operator",
        timeout=60,
    )
    assert results.get("Liveness/failed", 0) == 0
    assert status["restartCount"] == 0

    # It runs as the chart says: non-root, on a read-only root filesystem.
    assert exec_in(cluster, OPERATOR_NAMESPACE, name, "id", "-u").stdout.strip() == "65532"
    refused = exec_in(cluster, OPERATOR_NAMESPACE, name, "touch", "/probe")
    assert refused.code != 0 and "Read-only file system" in refused.stderr

    # It talks to the API server from inside the cluster with the chart's service account.
    logs = cluster.kubectl("logs", "-n", OPERATOR_NAMESPACE, name)
    assert "watching all namespaces for memorygraph.io" in logs

    # Its metrics reach another pod through the chart's Service.
    client = ClientPod(cluster, pods_namespace, cluster_operator.images["memorygraph"]).start()
    url = f"http://{RELEASE}-metrics.{OPERATOR_NAMESPACE}.svc:8080/metrics"
    scraped = client.run(
        "python",
        "-c",
        f"import urllib.request; print(urllib.request.urlopen({url!r}).read().decode())",
    )
    assert scraped.code == 0, scraped.stderr
    assert "memorygraph_operator_" in scraped.stdout

    deployment = cluster.get("deployment", RELEASE, OPERATOR_NAMESPACE)
    assert deployment is not None
    assert condition(deployment, "Available")["status"] == "True"
