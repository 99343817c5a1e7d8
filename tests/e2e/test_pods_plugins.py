"""A webhook Plugin served by a pod in the cluster, asked by the data plane before every write."""

from __future__ import annotations

from e2e_support import EXAMPLES, Cluster, eventually
from real_pods import ClientPod, RealNode, api_key_args, deploy, graph_manifest, on_real_node

TOKEN = "policy-token-value"


def _deploy_policy_service(cluster: Cluster, namespace: str, image: str) -> str:
    """docs/examples/webhook_plugin.py in the project's image; its URL inside the cluster."""
    script = (EXAMPLES / "webhook_plugin.py").read_text()
    cluster.apply(
        {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {"name": "policy", "namespace": namespace},
            "data": {"webhook_plugin.py": script},
        }
    )
    command = ["python", "/srv/webhook_plugin.py", "--host", "0.0.0.0", "--port", "8089"]
    command += ["--token", TOKEN, "--block", "forbidden"]
    pod = on_real_node(
        {
            "containers": [
                {
                    "name": "policy",
                    "image": image,
                    "command": command,
                    "ports": [{"containerPort": 8089}],
                    "readinessProbe": {"tcpSocket": {"port": 8089}, "periodSeconds": 2},
                    "volumeMounts": [{"name": "script", "mountPath": "/srv"}],
                }
            ],
            "volumes": [{"name": "script", "configMap": {"name": "policy"}}],
        }
    )
    return f"http://{deploy(cluster, namespace, 'policy', pod, 8089)}/hook"


def test_a_webhook_plugin_served_by_a_pod_refuses_a_write_and_tags_the_rest(
    cluster_operator: RealNode, cluster: Cluster, pods_namespace: str
) -> None:
    ns = pods_namespace
    image = cluster_operator.images["memorygraph"]
    url = _deploy_policy_service(cluster, ns, image)
    cluster.create_secret(ns, "policy-token", {"token": TOKEN})
    cluster.apply(
        {
            "apiVersion": "memorygraph.io/v1alpha1",
            "kind": "Plugin",
            "metadata": {"name": "policy", "namespace": ns},
            "spec": {
                "type": "Webhook",
                "hooks": ["before_create_node"],
                "failurePolicy": "Fail",
                "timeoutSeconds": 5,
                "webhook": {
                    "url": url,
                    "tokenSecretRef": {"name": "policy-token", "key": "token"},
                },
            },
        }
    )
    cluster.apply(graph_manifest(ns, "guarded", plugins={"names": ["policy"]}))
    graph = cluster.wait_graph(ns, "guarded", timeout=180)
    assert graph["status"]["plugins"] == ["policy"]
    eventually(
        lambda: (
            ((cluster.get("plugins.memorygraph.io", "policy", ns) or {}).get("status") or {}).get(
                "usedBy"
            )
            == ["guarded"]
        ),
        "the Plugin listing its graph",
    )

    server = graph["status"]["endpoints"]["grpc"]
    key = api_key_args(cluster, ns, "guarded")
    client = ClientPod(cluster, ns, image).start()
    session_id = client.memorygraph(server, *key, "session", "create", "--id-only").stdout.strip()
    refused = client.memorygraph(
        server, *key, "prompt", "add", session_id, "Tell me the forbidden word"
    )
    assert refused.code == 1
    assert "FAILED_PRECONDITION" in refused.stderr
    assert "rejected by plugin 'policy': mentions 'forbidden'" in refused.stderr
    allowed = client.memorygraph(server, *key, "prompt", "add", session_id, "Where is my order?")
    # The service's answer patched the metadata of what it let through.
    assert allowed.json()["metadata"] == {"policy": "checked"}
    stored = client.memorygraph(server, *key, "query", "--session", session_id).json()
    assert [n["content"] for n in stored["nodes"]] == ["Where is my order?"]
