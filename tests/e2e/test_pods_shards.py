"""A graph of two pods on the real node is one graph: the operator's shard map places its shards
on both, any pod answers for all of them through the Service or its own address, and a pod
deleted comes back with its shards while the other keeps serving its own."""

from __future__ import annotations

import json
import threading

from e2e_support import Cluster, condition, eventually
from memorygraph.model import parse_id
from memorygraph.store.shards import Shards
from real_pods import ClientPod, RealNode, api_key_args, graph_manifest, running_pod


def _listed(client: ClientPod, server: str, key: tuple[str]) -> set[str] | None:
    """The sessions listed through ``server``, or None while it cannot list them all."""
    listed = client.memorygraph(server, *key, "session", "list", "--limit", "100")
    return {s["id"] for s in listed.json()["sessions"]} if listed.code == 0 else None


def _session_ids(client: ClientPod, server: str, key: tuple[str]) -> set[str]:
    listed = client.memorygraph(server, *key, "session", "list", "--limit", "100")
    assert listed.code == 0, listed.stderr
    return {s["id"] for s in listed.json()["sessions"]}


def test_a_graph_of_two_pods_serves_every_session_from_either_pod(
    cluster_operator: RealNode, cluster: Cluster, pods_namespace: str
) -> None:
    ns = pods_namespace
    cluster.apply(graph_manifest(ns, "wide", replicas=2))
    graph = cluster.wait_graph(ns, "wide", timeout=240)
    shard_map = json.loads(cluster.get("configmap", "wide-shards", ns)["data"]["map.json"])
    assert shard_map["owners"] == [s % 2 for s in range(64)]
    assert shard_map["graph"] == graph["metadata"]["uid"]
    pods = [running_pod(cluster, ns, f"wide-{i}") for i in (0, 1)]
    assert all(p["spec"]["nodeName"] == cluster_operator.name for p in pods)

    key = api_key_args(cluster, ns, "wide")
    server = graph["status"]["endpoints"]["grpc"]
    own = [f"wide-{i}.wide-headless.{ns}.svc:50051" for i in (0, 1)]
    client = ClientPod(cluster, ns, cluster_operator.images["memorygraph"]).start()
    made = set()
    for _ in range(12):  # through the Service: whichever pod takes it forwards as needed
        created = client.memorygraph(server, *key, "session", "create", "--id-only")
        assert created.code == 0, created.stderr
        made.add(created.stdout.strip())
    for address in [server, *own]:
        assert _session_ids(client, address, key) == made
    on = {s: shard_map["owners"][Shards(64).of_id(parse_id(s, "id"))] for s in made}
    assert set(on.values()) == {0, 1}
    mine = next(s for s in sorted(made) if on[s] == 0)

    # Pod 1 goes and comes back on its volume; pod 0 answers for its own sessions meanwhile.
    answered: list[bool] = []
    done = threading.Event()

    def ask_pod_0() -> None:
        while not done.is_set():
            got = client.memorygraph(own[0], *key, "session", "get", mine)
            answered.append(got.code == 0)

    asking = threading.Thread(target=ask_pod_0)
    asking.start()
    try:
        cluster.kubectl("delete", "pod", "wide-1", "-n", ns, "--wait=true", "--timeout=90s")
        eventually(
            lambda: (
                (p := cluster.get("pod", "wide-1", ns))
                and p["metadata"]["uid"] != pods[1]["metadata"]["uid"]
                and condition(p, "Ready").get("status") == "True"
            ),
            "a new wide-1 Ready",
            timeout=120,
        )
    finally:
        done.set()
        asking.join(60)
    assert answered and all(answered)
    # The other pod finds wide-1 at its new address within seconds of its return.
    for address in [server, *own]:
        eventually(
            lambda a=address: _listed(client, a, key) == made,
            f"every session listed through {address}",
            timeout=30,
        )
