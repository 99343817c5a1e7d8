"""A MemoryGraph whose data plane really serves: probes, the Service, the volume, a rollout."""

from __future__ import annotations

import json
from typing import Any

from e2e_support import Cluster, condition, eventually
from real_pods import (
    STORAGE_CLASS,
    ClientPod,
    RealNode,
    api_key_args,
    graph_manifest,
    probe_results,
    running_pod,
)


def _container(pod: dict[str, Any]) -> dict[str, Any]:
    (status,) = pod["status"]["containerStatuses"]
    return dict(status)


def _write_a_turn(client: ClientPod, server: str, key: tuple[str]) -> str:
    """A session with a prompt and its response, written through the graph's Service in one
    call, the way the docs record a turn."""
    mg = key
    session = client.memorygraph(
        server, *mg, "session", "create", "--title", "support", "--id-only"
    )
    assert session.code == 0, session.stderr
    session_id = session.stdout.strip()
    turn = client.memorygraph(
        server,
        *mg,
        "turn",
        "add",
        session_id,
        "Where is my order?",
        "It ships today.",
        "--prompt-tokens",
        "12",
        "--completion-tokens",
        "6",
        "--id-only",
    )
    assert turn.code == 0, turn.stderr
    assert len(turn.stdout.split()) == 2  # the prompt's id and the response's
    return session_id


def _dump(client: ClientPod, server: str, key: tuple[str], session_id: str) -> dict[str, Any]:
    return dict(client.memorygraph(server, *key, "dump", session_id).json())


def test_a_graph_serves_through_its_service_and_keeps_its_data_when_its_pod_goes(
    cluster_operator: RealNode, cluster: Cluster, pods_namespace: str
) -> None:
    ns = pods_namespace
    cluster.apply(graph_manifest(ns, "chat"))
    graph = cluster.wait_graph(ns, "chat", timeout=180)
    pod = running_pod(cluster, ns, "chat-0")
    assert pod["spec"]["nodeName"] == cluster_operator.name
    status = _container(pod)
    assert status["image"] == cluster_operator.images["memorygraph"]
    assert status["ready"] and status["started"]

    # The kubelet ran the startup (gRPC health) and readiness (/readyz) probes and they passed.
    results = eventually(
        lambda: (
            (r := probe_results(cluster, cluster_operator.name, ns, "chat-0")).get(
                "Startup/successful"
            )
            and r.get("Readiness/successful")
            and r
        ),
        "successful startup and readiness probes",
    )
    assert results.get("Liveness/failed", 0) == 0
    claim = cluster.get("pvc", "data-chat-0", ns)
    assert claim is not None and claim["status"]["phase"] == "Bound"
    assert claim["spec"]["storageClassName"] == STORAGE_CLASS

    key = api_key_args(cluster, ns, "chat")
    server = graph["status"]["endpoints"]["grpc"]
    client = ClientPod(cluster, ns, cluster_operator.images["memorygraph"]).start()
    refused = client.memorygraph(server, "session", "list")
    assert refused.code == 1 and "UNAUTHENTICATED" in refused.stderr
    session_id = _write_a_turn(client, server, key)
    before = _dump(client, server, key, session_id)
    assert [n["content"] for n in before["nodes"]] == ["Where is my order?", "It ships today."]
    assert before["session"]["token_usage"]["total_tokens"] == "18"

    # The StatefulSet brings the pod back on the same claim: the data is still there.
    cluster.kubectl("delete", "pod", "chat-0", "-n", ns, "--wait=true", "--timeout=90s")
    again = eventually(
        lambda: (
            (p := cluster.get("pod", "chat-0", ns))
            and p["metadata"]["uid"] != pod["metadata"]["uid"]
            and condition(p, "Ready").get("status") == "True"
            and p
        ),
        "a new chat-0 Ready",
        timeout=120,
    )
    volumes = {v["name"]: v for v in again["spec"]["volumes"]}
    assert volumes["data"]["persistentVolumeClaim"]["claimName"] == "data-chat-0"
    assert _dump(client, server, key, session_id) == before


def test_an_image_change_rolls_out_and_the_data_stays(
    cluster_operator: RealNode, cluster: Cluster, pods_namespace: str
) -> None:
    ns = pods_namespace
    first, second = (cluster_operator.images[k] for k in ("memorygraph", "memorygraph-next"))
    cluster.apply(graph_manifest(ns, "roll", image=first))
    graph = cluster.wait_graph(ns, "roll", timeout=180)
    old = running_pod(cluster, ns, "roll-0")
    server = graph["status"]["endpoints"]["grpc"]
    key = api_key_args(cluster, ns, "roll")
    client = ClientPod(cluster, ns, first).start()
    session_id = _write_a_turn(client, server, key)
    before = _dump(client, server, key, session_id)

    cluster.kubectl(
        "patch",
        "mg",
        "roll",
        "-n",
        ns,
        "--type",
        "merge",
        "-p",
        json.dumps({"spec": {"image": second}}),
    )
    rolled = eventually(
        lambda: (
            (g := cluster.graph(ns, "roll"))
            and g["status"].get("currentImage") == second
            and condition(g, "Ready").get("status") == "True"
            and g
        ),
        "the graph Ready on the new image",
        timeout=180,
    )
    assert condition(rolled, "Progressing")["status"] == "False"
    new = running_pod(cluster, ns, "roll-0")
    assert new["metadata"]["uid"] != old["metadata"]["uid"]
    assert _container(new)["image"] == second
    # Another image indeed, not the same one under another name.
    assert _container(new)["imageID"] != _container(old)["imageID"]
    assert _dump(client, server, key, session_id) == before
