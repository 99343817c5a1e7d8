"""Safe defaults, as the handlers apply them: authentication, exposure, network access."""

from __future__ import annotations

import dataclasses
from typing import Any

import kopf
import pytest
import yaml
from apiserver import ApiServer
from handler_support import NS, STS, _conditions, _events, _graph, _reconcile, log
from memorygraph_operator.handlers import on_graph
from operator_support import GRAPHS

pytestmark = pytest.mark.asyncio


async def test_a_graph_without_settings_requires_an_api_key_its_applications_can_read(
    api: ApiServer, memo: kopf.Memo
) -> None:
    _graph(api)  # spec: {}
    await _reconcile(memo)

    config = api.read("v1/configmaps", NS, "chat-memory-config")["data"]["memorygraph.yaml"]  # type: ignore[index]
    assert yaml.safe_load(config)["auth"] == {
        "enabled": True,
        "api_keys_file": "/etc/memorygraph/auth/api-keys",
    }
    secret = api.read("v1/secrets", NS, "chat-memory-api-keys")
    assert secret is not None
    keys = secret["stringData"]
    # The key applications are given is one the server accepts, and not the archival job's.
    assert keys["api-key"] in keys["api-keys"].split()
    assert keys["api-key"] != keys["archival-api-key"] and len(keys["api-key"]) >= 32
    volumes = api.read(STS, NS, "chat-memory")["spec"]["template"]["spec"]["volumes"]  # type: ignore[index]
    (config_volume,) = [v for v in volumes if v["name"] == "config"]
    assert {
        "secret": {
            "name": "chat-memory-api-keys",
            "items": [{"key": "api-keys", "path": "auth/api-keys"}],
        }
    } in config_volume["projected"]["sources"]
    assert ("Normal", "APIKeysGenerated") in _events(api)


@pytest.mark.parametrize("service_type", ["NodePort", "LoadBalancer"])
async def test_exposing_a_graph_outside_the_cluster_without_authentication_is_refused(
    api: ApiServer, memo: kopf.Memo, service_type: str
) -> None:
    _graph(api, {"service": {"type": service_type}, "auth": {"enabled": False}})
    with pytest.raises(kopf.PermanentError, match="exposes the graph outside the cluster"):
        await on_graph(name="chat-memory", namespace=NS, memo=memo, logger=log)
    ready = _conditions(api)["Ready"]
    assert (ready["status"], ready["reason"]) == ("False", "InvalidSpec")
    assert "needs auth.enabled: true" in ready["message"]
    assert api.read("v1/services", NS, "chat-memory") is None

    # Inside the cluster, switching authentication off stays possible.
    api.edit(GRAPHS, NS, "chat-memory", {"spec": {"service": {"type": "ClusterIP"}}})
    await _reconcile(memo)
    assert api.read("v1/services", NS, "chat-memory")["spec"]["type"] == "ClusterIP"  # type: ignore[index]


async def test_exposing_a_graph_without_tls_is_flagged_once(
    api: ApiServer, memo: kopf.Memo
) -> None:
    _graph(api)
    await _reconcile(memo)
    assert ("Warning", "ExposedWithoutTLS") not in _events(api)
    api.edit(GRAPHS, NS, "chat-memory", {"spec": {"service": {"type": "LoadBalancer"}}})
    await _reconcile(memo)
    await _reconcile(memo)
    assert _events(api).count(("Warning", "ExposedWithoutTLS")) == 1
    assert api.read("v1/services", NS, "chat-memory")["spec"]["type"] == "LoadBalancer"  # type: ignore[index]


NETPOL = "networking.k8s.io/v1/networkpolicies"


def _ingress(api: ApiServer) -> list[dict[str, Any]]:
    policy = api.read(NETPOL, NS, "chat-memory")
    assert policy is not None
    assert policy["spec"]["policyTypes"] == ["Ingress"]
    return list(policy["spec"]["ingress"])


def _rule(ingress: list[dict[str, Any]], port: int) -> dict[str, Any] | None:
    rules = [r for r in ingress if r["ports"] == [{"port": port, "protocol": "TCP"}]]
    assert len(rules) <= 1
    return rules[0] if rules else None


async def test_a_graph_without_settings_admits_its_namespace_and_nobody_to_its_metrics(
    api: ApiServer, memo: kopf.Memo
) -> None:
    _graph(api)
    await _reconcile(memo)
    ingress = _ingress(api)
    grpc = _rule(ingress, 50051)
    assert grpc is not None and {"podSelector": {}} in grpc["from"]
    assert all(set(peer) == {"podSelector"} for peer in grpc["from"])  # this namespace only
    assert _rule(ingress, 9090) is None and len(ingress) == 2
    # The peer port: the graph's own pods, nobody else.
    assert _rule(ingress, 50052) == {
        "from": [{"podSelector": {"matchLabels": grpc["from"][0]["podSelector"]["matchLabels"]}}],
        "ports": [{"port": 50052, "protocol": "TCP"}],
    }


async def test_the_peer_port_admits_the_operators_own_pods_when_the_installation_names_them(
    api: ApiServer, memo: kopf.Memo
) -> None:
    labels = (
        ("app.kubernetes.io/name", "memorygraph-operator"),
        ("app.kubernetes.io/instance", "mg"),
    )
    memo.env = dataclasses.replace(memo.env, operator_pods=("operators", labels))
    _graph(api)
    await _reconcile(memo)
    peer = _rule(_ingress(api), 50052)
    assert peer is not None and len(peer["from"]) == 2
    assert peer["from"][1] == {
        "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "operators"}},
        "podSelector": {"matchLabels": dict(labels)},
    }


async def test_the_metrics_port_admits_the_installations_namespaces_or_the_graphs_own_sources(
    api: ApiServer, memo: kopf.Memo
) -> None:
    memo.env = dataclasses.replace(memo.env, metrics_namespaces=("monitoring",))
    _graph(api)
    await _reconcile(memo)
    metrics = _rule(_ingress(api), 9090)
    assert metrics == {
        "from": [
            {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "monitoring"}}}
        ],
        "ports": [{"port": 9090, "protocol": "TCP"}],
    }
    prometheus = {"namespaceSelector": {"matchLabels": {"team": "obs"}}}
    api.edit(GRAPHS, NS, "chat-memory", {"spec": {"monitoring": {"allowedFrom": [prometheus]}}})
    await _reconcile(memo)
    assert _rule(_ingress(api), 9090)["from"] == [prometheus]  # type: ignore[index]
    api.edit(GRAPHS, NS, "chat-memory", {"spec": {"monitoring": {"allowedFrom": []}}})
    await _reconcile(memo)
    assert _rule(_ingress(api), 9090) is None


async def test_listed_clients_replace_the_namespace_and_an_exposed_graph_admits_every_source(
    api: ApiServer, memo: kopf.Memo
) -> None:
    clients = [{"namespaceSelector": {"matchLabels": {"team": "a"}}}]
    _graph(api, {"networkPolicy": {"allowedClients": clients}})
    await _reconcile(memo)
    grpc = _rule(_ingress(api), 50051)
    assert grpc is not None and clients[0] in grpc["from"]
    assert {"podSelector": {}} not in grpc["from"]

    api.edit(
        GRAPHS,
        NS,
        "chat-memory",
        {"spec": {"networkPolicy": None, "service": {"type": "LoadBalancer"}}},
    )
    await _reconcile(memo)
    assert _rule(_ingress(api), 50051) == {"ports": [{"port": 50051, "protocol": "TCP"}]}

    api.edit(GRAPHS, NS, "chat-memory", {"spec": {"networkPolicy": {"enabled": False}}})
    await _reconcile(memo)
    assert api.read(NETPOL, NS, "chat-memory") is None
