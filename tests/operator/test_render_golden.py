"""Every renderer against reviewed golden files, and every rendered object against the
Kubernetes schemas. Update the goldens with: UPDATE_GOLDEN=1 pytest tests/operator
"""

from __future__ import annotations

import copy
import dataclasses
from typing import Any

import kubernetes_validate
import pytest
from memorygraph_operator.api.base import LabelSelector
from memorygraph_operator.reconcile.inputs import parse_graph, select_plugins
from memorygraph_operator.render import (
    GraphInputs,
    RenderEnv,
    plan_shard_map,
    render_auth_secret,
    render_children,
)
from operator_support import Golden, load_example

K8S_VERSION = "1.33"


def _graph(manifest: dict[str, Any], plugins: list[dict[str, Any]] | None = None) -> GraphInputs:
    manifest = copy.deepcopy(manifest)
    manifest["metadata"].setdefault("uid", "0b5c3f0e-3b1a-4c5e-9a51-000000000001")
    bare = parse_graph(manifest)
    selection = select_plugins(bare.spec, plugins or [])
    g = parse_graph(manifest, selection.selected)
    # As a reconcile renders a new graph: with the shard map it writes for it first.
    return dataclasses.replace(g, shard_map=plan_shard_map(g, None, None).shard_map)


def _fixed_replicas() -> dict[str, Any]:
    m = load_example("memorygraph-full.yaml")
    spec = m["spec"]
    del spec["autoscaling"]
    del spec["networkPolicy"]  # the default policy, scraped from the installation's namespaces
    spec["monitoring"].pop("allowedFrom", None)
    spec["replicas"] = 3
    spec["storage"] = {"size": "20Gi", "deletionPolicy": "Delete"}
    spec["durability"] = "Fast"
    # A CPU of its own (requests equal to limits, one CPU for the pod's one process), to keep
    # the process on.
    spec["resources"] = {
        "requests": {"cpu": "1", "memory": "2Gi"},
        "limits": {"cpu": "1", "memory": "2Gi"},
    }
    spec["pinCpus"] = True
    spec["logLevel"] = "Debug"
    spec["auth"] = {"enabled": True, "secretRef": {"name": "client-keys"}}
    spec["tls"] = {"secretRef": {"name": "tls"}, "requireClientCertificate": True}
    spec["archival"] = {
        "schedule": "0 */6 * * *",
        "suspend": True,
        "compliance": "PCI",
        "destination": {"s3": {"bucket": "archives", "secretRef": {"name": "s3-creds"}}},
        "clientCertificateSecretRef": {"name": "archival-client-tls"},
    }
    spec["service"] = {"type": "LoadBalancer"}
    spec["registry"] = {"url": "http://registry.apps.svc:8080"}
    return m


def _open() -> dict[str, Any]:
    """Every safe default switched off on purpose: nothing guards the graph."""
    m = load_example("memorygraph-minimal.yaml")
    m["spec"] = {"auth": {"enabled": False}, "networkPolicy": {"enabled": False}}
    return m


def _restarted() -> dict[str, Any]:
    m = load_example("memorygraph-minimal.yaml")
    m["metadata"]["annotations"] = {"memorygraph.io/restartedAt": "2026-01-02T03:04:05Z"}
    return m


# Fixed rather than the operator's default, so that a release does not rewrite the goldens.
IMAGE = "ghcr.io/memorygraph/memorygraph:0.1.0"
PLUGINS = [load_example("plugin-pii-redactor.yaml"), load_example("plugin-webhook.yaml")]

CASES: dict[str, tuple[dict[str, Any], list[dict[str, Any]], RenderEnv]] = {
    "minimal": (load_example("memorygraph-minimal.yaml"), [], RenderEnv(default_image=IMAGE)),
    "full": (
        load_example("memorygraph-full.yaml"),
        PLUGINS,
        RenderEnv(service_monitor_available=True),
    ),
    # The ServiceMonitor is requested but its CRD is missing: it must not be rendered.
    "fixed-replicas": (
        _fixed_replicas(),
        PLUGINS[:1],
        RenderEnv(default_image=IMAGE, metrics_namespaces=("monitoring", "observability")),
    ),
    "open": (_open(), [], RenderEnv(default_image=IMAGE)),
    "restarted": (_restarted(), [], RenderEnv(default_image="registry.local/memorygraph:dev")),
}


def _file_name(obj: dict[str, Any]) -> str:
    return f"{obj['kind'].lower()}-{obj['metadata']['name']}.yaml"


@pytest.mark.parametrize("case", list(CASES))
def test_render(case: str, golden: Golden) -> None:
    manifest, plugins, env = CASES[case]
    g = _graph(manifest, plugins)
    for child in render_children(g, env):
        if child.body is not None:
            golden.check(_file_name(child.body), child.body)
    secret = render_auth_secret(g, client_key="client-key", archival_key="archival-key")
    if secret is not None:
        golden.check(_file_name(secret), secret)
    golden.check_no_extra_files()


@pytest.mark.parametrize("case", list(CASES))
def test_rendered_objects_pass_kubernetes_schema_validation(case: str) -> None:
    manifest, plugins, env = CASES[case]
    g = _graph(manifest, plugins)
    objects = [c.body for c in render_children(g, env) if c.body is not None]
    objects.append(render_auth_secret(g, "a", "b"))
    for obj in objects:
        if obj is None or obj["apiVersion"].startswith("monitoring.coreos.com/"):
            continue  # not a built-in kind; its shape is pinned by the golden file
        kubernetes_validate.validate(obj, K8S_VERSION, strict=True)


def test_optional_children_are_absent_from_the_minimal_graph() -> None:
    manifest, plugins, env = CASES["minimal"]
    rendered = {c.kind: c.body for c in render_children(_graph(manifest, plugins), env)}
    for kind in ("HorizontalPodAutoscaler", "PodDisruptionBudget", "CronJob", "ServiceMonitor"):
        assert rendered[kind] is None, kind


def test_a_graph_without_settings_is_guarded_and_only_on_request_is_not() -> None:
    """Authentication and a NetworkPolicy are defaults: a graph is open only when told so."""
    minimal = _graph(*CASES["minimal"][:2])
    policy = {c.kind: c.body for c in render_children(minimal, RenderEnv())}["NetworkPolicy"]
    assert policy is not None
    grpc, _ = policy["spec"]["ingress"]  # no source may scrape metrics unless one is named
    assert {"podSelector": {}} in grpc["from"]  # the graph's namespace, and only it
    assert not any("namespaceSelector" in peer or "ipBlock" in peer for peer in grpc["from"])
    assert render_auth_secret(minimal, "a", "b") is not None

    opened = _graph(*CASES["open"][:2])
    rendered = {c.kind: c.body for c in render_children(opened, RenderEnv())}
    assert rendered["NetworkPolicy"] is None
    assert render_auth_secret(opened, "a", "b") is None
    config = rendered["ConfigMap"]["data"]["memorygraph.yaml"]  # type: ignore[index]
    assert "enabled: false" in config and "api_keys_file" not in config


def test_archival_job_pods_are_no_data_plane_pods_but_may_reach_the_grpc_port() -> None:
    # Were the Job's pods selected like the data plane's, the client Service would send RPCs to
    # them and the HPA would count them (with no CPU request) among the StatefulSet's pods.
    manifest, plugins, env = CASES["full"]
    children = {c.kind: c.body for c in render_children(_graph(manifest, plugins), env)}
    sts, cron, policy = children["StatefulSet"], children["CronJob"], children["NetworkPolicy"]
    assert sts is not None and cron is not None and policy is not None
    job_pod = cron["spec"]["jobTemplate"]["spec"]["template"]["metadata"]["labels"]
    data_pod = sts["spec"]["template"]["metadata"]["labels"]
    selectors = [
        sts["spec"]["selector"]["matchLabels"],
        policy["spec"]["podSelector"]["matchLabels"],
        *(
            c.body["spec"]["selector"]
            for c in render_children(_graph(manifest, plugins), env)
            if c.kind == "Service" and c.body is not None
        ),
        children["PodDisruptionBudget"]["spec"]["selector"]["matchLabels"],  # type: ignore[index]
    ]
    for selector in selectors:
        assert LabelSelector(match_labels=selector).matches(data_pod)
        assert not LabelSelector(match_labels=selector).matches(job_pod)

    grpc_rule = policy["spec"]["ingress"][0]
    assert grpc_rule["ports"] == [{"port": 50051, "protocol": "TCP"}]
    assert any(
        LabelSelector(match_labels=peer["podSelector"]["matchLabels"]).matches(job_pod)
        for peer in grpc_rule["from"]
        if "podSelector" in peer and "namespaceSelector" not in peer
    )
