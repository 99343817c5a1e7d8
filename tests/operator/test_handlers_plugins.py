"""Plugin handlers: plugins reach their graphs' config; bad or deleted ones are reported."""

from __future__ import annotations

import kopf
import pytest
from apiserver import ApiServer
from handler_support import NS, _conditions, _events, _graph, _reconcile, log
from memorygraph_operator.handlers import on_graph_event, on_plugin, on_plugin_event
from operator_support import GRAPHS, PLUGINS, load_example

pytestmark = pytest.mark.asyncio


async def test_plugins_reach_the_config_and_report_their_users(
    api: ApiServer, memo: kopf.Memo
) -> None:
    redactor = api.store(PLUGINS, load_example("plugin-pii-redactor.yaml"))
    webhook = api.store(PLUGINS, load_example("plugin-webhook.yaml"))
    _graph(
        api,
        {
            "plugins": {
                "names": ["pii-redactor"],
                "selector": {"matchLabels": {"memorygraph.io/plugin-set": "default"}},
            }
        },
    )
    await _reconcile(memo)
    for plugin in (redactor, webhook):
        await on_plugin(
            body=api.read(PLUGINS, NS, plugin["metadata"]["name"]),
            namespace=NS,
            memo=memo,
            logger=log,
        )

    config = api.read("v1/configmaps", NS, "chat-memory-config")["data"]["plugins.yaml"]  # type: ignore[index]
    assert config.index("name: pii-redactor") < config.index("name: policy-webhook")
    assert api.read(PLUGINS, NS, "pii-redactor")["status"]["usedBy"] == ["chat-memory"]  # type: ignore[index]

    api.edit(PLUGINS, NS, "pii-redactor", {"spec": {"order": 99}})
    await on_plugin(body=api.read(PLUGINS, NS, "pii-redactor"), namespace=NS, memo=memo, logger=log)
    config = api.read("v1/configmaps", NS, "chat-memory-config")["data"]["plugins.yaml"]  # type: ignore[index]
    assert config.index("name: policy-webhook") < config.index("name: pii-redactor")


async def test_deleting_a_plugin_in_use_is_reported_on_the_graph(
    api: ApiServer, memo: kopf.Memo
) -> None:
    api.store(PLUGINS, load_example("plugin-pii-redactor.yaml"))
    _graph(api, {"plugins": {"names": ["pii-redactor"]}})
    await _reconcile(memo)
    await on_plugin(body=api.read(PLUGINS, NS, "pii-redactor"), namespace=NS, memo=memo, logger=log)
    last = api.read(PLUGINS, NS, "pii-redactor")
    api.objects[(PLUGINS, NS, "pii-redactor")].delete()

    await on_plugin_event(
        type="DELETED", body=last, name="pii-redactor", namespace=NS, memo=memo, logger=log
    )
    assert ("Warning", "PluginDeleted") in _events(api)
    conds = _conditions(api)
    assert conds["Degraded"]["reason"] == "MissingPlugins"
    assert "pii-redactor" in conds["Degraded"]["message"]
    config = api.read("v1/configmaps", NS, "chat-memory-config")["data"]["plugins.yaml"]  # type: ignore[index]
    assert "pii-redactor" not in config


async def test_invalid_plugin_is_marked_and_left_out(api: ApiServer, memo: kopf.Memo) -> None:
    bad = load_example("plugin-pii-redactor.yaml")
    bad["spec"]["hooks"] = ["whenever"]
    api.store(PLUGINS, bad)
    _graph(api, {"plugins": {"names": ["pii-redactor"]}})
    await on_plugin(body=api.read(PLUGINS, NS, "pii-redactor"), namespace=NS, memo=memo, logger=log)
    assert (
        api.read(PLUGINS, NS, "pii-redactor")["status"]["conditions"][0]["reason"] == "InvalidSpec"
    )  # type: ignore[index]
    assert _conditions(api)["Degraded"]["reason"] == "InvalidPlugins"


async def test_plugin_only_the_data_plane_would_refuse_never_reaches_the_config(
    api: ApiServer, memo: kopf.Memo
) -> None:
    good = load_example("plugin-webhook.yaml")
    bad = load_example("plugin-pii-redactor.yaml")
    bad["spec"]["config"] = {"patterns": ["email", "ssn"]}  # the CRD schema lets this through
    api.store(PLUGINS, good)
    api.store(PLUGINS, bad)
    _graph(api, {"plugins": {"names": ["pii-redactor", "policy-webhook"]}})
    await on_plugin(body=api.read(PLUGINS, NS, "pii-redactor"), namespace=NS, memo=memo, logger=log)

    ready = api.read(PLUGINS, NS, "pii-redactor")["status"]["conditions"][0]  # type: ignore[index]
    assert (ready["status"], ready["reason"]) == ("False", "InvalidSpec")
    assert "config.patterns.1" in ready["message"]
    assert ("Warning", "InvalidSpec") in _events(api)
    await _reconcile(memo)
    config = api.read("v1/configmaps", NS, "chat-memory-config")["data"]["plugins.yaml"]  # type: ignore[index]
    assert "pii-redactor" not in config and "policy-webhook" in config
    assert _conditions(api)["Degraded"]["reason"] == "InvalidPlugins"


async def test_a_webhook_naming_its_own_token_file_never_reaches_the_config(
    api: ApiServer, memo: kopf.Memo
) -> None:
    """The only token a webhook sends is its own Secret's: a ``config.token_file`` pointing at
    the graph's API keys is refused, never written into plugins.yaml."""
    thief = load_example("plugin-webhook.yaml")
    del thief["spec"]["webhook"]["tokenSecretRef"]
    thief["spec"]["config"] = {"token_file": "/etc/memorygraph/auth/api-keys"}
    api.store(PLUGINS, thief)
    _graph(api, {"plugins": {"names": ["policy-webhook"]}})
    await on_plugin(
        body=api.read(PLUGINS, NS, "policy-webhook"), namespace=NS, memo=memo, logger=log
    )

    ready = api.read(PLUGINS, NS, "policy-webhook")["status"]["conditions"][0]  # type: ignore[index]
    assert (ready["status"], ready["reason"]) == ("False", "InvalidSpec")
    assert "config.token_file is not accepted" in ready["message"]
    config = api.read("v1/configmaps", NS, "chat-memory-config")["data"]["plugins.yaml"]  # type: ignore[index]
    assert "token_file" not in config and "policy-webhook" not in config
    assert _conditions(api)["Degraded"]["reason"] == "InvalidPlugins"


async def test_plugin_users_follow_graph_selection_changes_and_deletion(
    api: ApiServer, memo: kopf.Memo
) -> None:
    api.store(PLUGINS, load_example("plugin-pii-redactor.yaml"))
    _graph(api)
    await _reconcile(memo)
    assert api.read(PLUGINS, NS, "pii-redactor").get("status") is None  # type: ignore[union-attr]

    api.edit(GRAPHS, NS, "chat-memory", {"spec": {"plugins": {"names": ["pii-redactor"]}}})
    await _reconcile(memo)
    assert api.read(PLUGINS, NS, "pii-redactor")["status"]["usedBy"] == ["chat-memory"]  # type: ignore[index]

    last = api.read(GRAPHS, NS, "chat-memory")
    api.objects[(GRAPHS, NS, "chat-memory")].delete()
    await on_graph_event(
        type="DELETED", name="chat-memory", namespace=NS, memo=memo, logger=log, body=last
    )
    assert api.read(PLUGINS, NS, "pii-redactor")["status"]["usedBy"] == []  # type: ignore[index]
