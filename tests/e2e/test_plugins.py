"""Scenario 8: Plugin resources selected by graphs on a real cluster."""

from __future__ import annotations

import json

import yaml
from e2e_support import Cluster, OperatorProcess, condition, eventually, example


def _plugins_yaml(cluster: Cluster, namespace: str, graph: str) -> list[dict[str, object]]:
    cm = cluster.get("configmap", f"{graph}-config", namespace)
    assert cm is not None
    return list(yaml.safe_load(cm["data"]["plugins.yaml"])["plugins"])


def test_selected_plugins_reach_the_config_and_report_their_graphs(
    operator: OperatorProcess, cluster: Cluster, namespace: str
) -> None:
    redactor = example("plugin-pii-redactor.yaml", namespace)
    redactor["metadata"]["labels"] = {"memorygraph.io/plugin-set": "default"}
    cluster.apply(redactor)
    cluster.apply(
        {
            "apiVersion": "memorygraph.io/v1alpha1",
            "kind": "MemoryGraph",
            "metadata": {"name": "by-name", "namespace": namespace},
            "spec": {"replicas": 2},
        }
    )
    cluster.wait_graph(namespace, "by-name")
    assert _plugins_yaml(cluster, namespace, "by-name") == []
    sts = cluster.get("statefulset", "by-name", namespace)
    assert sts is not None
    pods = {p["metadata"]["uid"] for p in cluster.pods(namespace, "by-name")}

    cluster.kubectl(
        "patch",
        "mg",
        "by-name",
        "-n",
        namespace,
        "--type",
        "merge",
        "-p",
        json.dumps({"spec": {"plugins": {"names": ["pii-redactor"]}}}),
    )
    graph = cluster.wait_graph(namespace, "by-name")
    entries = _plugins_yaml(cluster, namespace, "by-name")
    assert [e["name"] for e in entries] == ["pii-redactor"]
    assert entries[0]["type"] == "redactor"
    assert graph["status"]["plugins"] == ["pii-redactor"]
    plugin = eventually(
        lambda: (
            (p := cluster.get("plugins.memorygraph.io", "pii-redactor", namespace))
            and (p.get("status") or {}).get("usedBy") == ["by-name"]
            and p
        ),
        "the Plugin listing its graph",
    )
    assert condition(plugin, "Ready")["status"] == "True"
    # plugins.yaml is reloaded by the server: the pod template and the pods stay as they were.
    after = cluster.get("statefulset", "by-name", namespace)
    assert after is not None
    assert after["spec"]["template"] == sts["spec"]["template"]
    assert {p["metadata"]["uid"] for p in cluster.pods(namespace, "by-name")} == pods

    # A second graph selecting by label; the plugin then reports both.
    cluster.apply(
        {
            "apiVersion": "memorygraph.io/v1alpha1",
            "kind": "MemoryGraph",
            "metadata": {"name": "by-label", "namespace": namespace},
            "spec": {
                "plugins": {"selector": {"matchLabels": {"memorygraph.io/plugin-set": "default"}}}
            },
        }
    )
    cluster.wait_graph(namespace, "by-label")
    assert [e["name"] for e in _plugins_yaml(cluster, namespace, "by-label")] == ["pii-redactor"]
    eventually(
        lambda: (
            (
                (cluster.get("plugins.memorygraph.io", "pii-redactor", namespace) or {}).get(
                    "status"
                )
                or {}
            ).get("usedBy")
            == ["by-label", "by-name"]
        ),
        "usedBy listing both graphs",
    )

    # A plugin change reaches every graph using it.
    cluster.kubectl(
        "patch",
        "plugin",
        "pii-redactor",
        "-n",
        namespace,
        "--type",
        "merge",
        "-p",
        json.dumps({"spec": {"order": 20}}),
    )
    for graph_name in ("by-name", "by-label"):
        eventually(
            lambda g=graph_name: _plugins_yaml(cluster, namespace, g)[0]["order"] == 20,
            f"{graph_name} seeing the new order",
        )

    # Deleting it: the graph that named it is Degraded (MissingPlugins).
    cluster.kubectl("delete", "plugin", "pii-redactor", "-n", namespace)
    degraded = cluster.wait_condition(namespace, "by-name", "Degraded", reason="MissingPlugins")
    assert condition(degraded, "Ready")["status"] == "False"
    assert _plugins_yaml(cluster, namespace, "by-name") == []
    events = cluster.kubectl("get", "events", "-n", namespace, "-o", "json")
    reasons = {e["reason"] for e in json.loads(events)["items"]}
    assert "PluginDeleted" in reasons
