"""Safe defaults, as the handlers apply them: authentication, exposure, network access."""

from __future__ import annotations

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
