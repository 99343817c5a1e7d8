"""Handler behaviour against a fake API server (kmock): what users see happen to their graphs."""

from __future__ import annotations

import copy
import logging
from typing import Any

import kopf
import pytest
from apiserver import ApiServer
from memorygraph_operator.handlers import (
    on_child,
    on_graph,
    on_graph_event,
    on_plugin,
    on_plugin_event,
    reconcile_graph_by_name,
    resync_all,
)
from memorygraph_operator.render.image import DEFAULT_IMAGE
from operator_support import GRAPHS, PLUGINS, load_example

pytestmark = pytest.mark.asyncio

NS = "apps"
STS = "apps/v1/statefulsets"
log = logging.getLogger("test")


def _graph(api: ApiServer, spec: dict[str, Any] | None = None, **meta: Any) -> dict[str, Any]:
    manifest = load_example("memorygraph-minimal.yaml")
    manifest["spec"] = spec or {}
    manifest["metadata"].update(meta)
    return api.store(GRAPHS, manifest)


async def _reconcile(memo: kopf.Memo, name: str = "chat-memory") -> dict[str, Any] | None:
    return await reconcile_graph_by_name(memo, NS, name, log)


def _conditions(api: ApiServer, name: str = "chat-memory") -> dict[str, dict[str, Any]]:
    obj = api.read(GRAPHS, NS, name)
    assert obj is not None
    return {c["type"]: c for c in obj["status"]["conditions"]}


def _events(api: ApiServer) -> list[tuple[str, str]]:
    return [
        (e["type"], e["reason"])
        for (res, _, _), e in api.objects.items()
        if res.plural == "events" and not e.deleted
    ]


def _pods_ready(api: ApiServer, name: str = "chat-memory") -> None:
    """Play the StatefulSet controller: every desired pod is up to date and ready."""
    sts = api.read(STS, NS, name)
    assert sts is not None
    n = sts["spec"].get("replicas", 1)
    api.edit(
        STS,
        NS,
        name,
        {
            "status": {
                "observedGeneration": sts["metadata"]["generation"],
                "replicas": n,
                "readyReplicas": n,
                "updatedReplicas": n,
                "currentRevision": "r1",
                "updateRevision": "r1",
            }
        },
    )


async def test_create_renders_children_owned_by_the_graph_and_reports_progress(
    api: ApiServer, memo: kopf.Memo
) -> None:
    graph = _graph(api)
    await on_graph(name="chat-memory", namespace=NS, memo=memo, logger=log)

    sts = api.read(STS, NS, "chat-memory")
    assert sts is not None and sts["spec"]["replicas"] == 1
    for ref, name in [
        ("v1/services", "chat-memory"),
        ("v1/services", "chat-memory-headless"),
        ("v1/configmaps", "chat-memory-config"),
    ]:
        child = api.read(ref, NS, name)
        assert child is not None, name
        assert child["metadata"]["ownerReferences"][0]["uid"] == graph["metadata"]["uid"]
    status = api.read(GRAPHS, NS, "chat-memory")["status"]  # type: ignore[index]
    assert status["observedGeneration"] == 1
    assert (
        status["selector"] == "app.kubernetes.io/name=memorygraph,memorygraph.io/graph=chat-memory"
    )
    assert status["endpoints"]["grpc"] == "chat-memory.apps.svc:50051"
    conds = _conditions(api)
    assert conds["Ready"]["status"] == "False"
    assert conds["Progressing"]["status"] == "True"
    assert conds["Paused"]["status"] == "False"


async def test_graph_becomes_ready_when_its_pods_are_ready_with_one_event(
    api: ApiServer, memo: kopf.Memo
) -> None:
    _graph(api)
    await _reconcile(memo)
    _pods_ready(api)
    sts = api.read(STS, NS, "chat-memory")
    await on_child(
        type="MODIFIED", body=sts, namespace=NS, memo=memo, logger=log
    )  # the StatefulSet's watch event

    conds = _conditions(api)
    assert conds["Ready"]["status"] == "True"
    assert conds["Available"]["status"] == "True"
    assert conds["Progressing"]["reason"] == "RolloutComplete"
    status = api.read(GRAPHS, NS, "chat-memory")["status"]  # type: ignore[index]
    assert status["readyReplicas"] == 1
    assert status["currentImage"] == DEFAULT_IMAGE
    await _reconcile(memo)
    assert _events(api).count(("Normal", "Ready")) == 1


async def test_update_and_scale_change_the_statefulset_and_add_a_pdb(
    api: ApiServer, memo: kopf.Memo
) -> None:
    _graph(api)
    await _reconcile(memo)
    assert api.read("policy/v1/poddisruptionbudgets", NS, "chat-memory") is None
    api.edit(GRAPHS, NS, "chat-memory", {"spec": {"replicas": 3}})  # what `kubectl scale` does
    await _reconcile(memo)

    assert api.read(STS, NS, "chat-memory")["spec"]["replicas"] == 3  # type: ignore[index]
    assert api.read("policy/v1/poddisruptionbudgets", NS, "chat-memory") is not None
    assert api.read(GRAPHS, NS, "chat-memory")["status"]["observedGeneration"] == 2  # type: ignore[index]


async def test_operator_restart_writes_nothing(api: ApiServer, memo: kopf.Memo) -> None:
    spec = copy.deepcopy(load_example("memorygraph-full.yaml")["spec"])
    api.store(PLUGINS, load_example("plugin-pii-redactor.yaml"))
    api.store(PLUGINS, load_example("plugin-webhook.yaml"))
    _graph(api, spec, name="agents-memory")
    await _reconcile(memo, "agents-memory")
    _pods_ready(api, "agents-memory")
    await _reconcile(memo, "agents-memory")
    template = api.read(STS, NS, "agents-memory")["spec"]["template"]  # type: ignore[index]

    api.writes.clear()
    await _reconcile(memo, "agents-memory")  # as on.resume does after a restart
    assert api.writes == []
    assert api.read(STS, NS, "agents-memory")["spec"]["template"] == template  # type: ignore[index]


async def test_child_drift_is_repaired(api: ApiServer, memo: kopf.Memo) -> None:
    _graph(api)
    await _reconcile(memo)
    api.edit(
        STS,
        NS,
        "chat-memory",
        {
            "spec": {
                "template": {
                    "spec": {"containers": [{"name": "memorygraph", "image": "evil:latest"}]}
                }
            }
        },
    )
    api.edit("v1/configmaps", NS, "chat-memory-config", {"data": {"memorygraph.yaml": "port: 1\n"}})
    sts = api.read(STS, NS, "chat-memory")
    await on_child(type="MODIFIED", body=sts, namespace=NS, memo=memo, logger=log)

    containers = api.read(STS, NS, "chat-memory")["spec"]["template"]["spec"]["containers"]  # type: ignore[index]
    assert containers[0]["image"] == DEFAULT_IMAGE
    assert (
        "durability: durable"
        in api.read("v1/configmaps", NS, "chat-memory-config")["data"]["memorygraph.yaml"]
    )  # type: ignore[index]


async def test_pause_stops_reconciling_and_resume_catches_up(
    api: ApiServer, memo: kopf.Memo
) -> None:
    _graph(api)
    await _reconcile(memo)
    api.edit(
        GRAPHS,
        NS,
        "chat-memory",
        {
            "metadata": {"annotations": {"memorygraph.io/paused": "true"}},
            "spec": {"image": "registry.local/memorygraph:pinned"},
        },
    )
    await _reconcile(memo)
    image = api.read(STS, NS, "chat-memory")["spec"]["template"]["spec"]["containers"][0]["image"]  # type: ignore[index]
    assert image == DEFAULT_IMAGE
    assert _conditions(api)["Paused"]["status"] == "True"
    assert api.read(GRAPHS, NS, "chat-memory")["status"]["observedGeneration"] == 1  # type: ignore[index]

    resume = {"metadata": {"annotations": {"memorygraph.io/paused": None}}}
    api.edit(GRAPHS, NS, "chat-memory", resume)
    await _reconcile(memo)
    image = api.read(STS, NS, "chat-memory")["spec"]["template"]["spec"]["containers"][0]["image"]  # type: ignore[index]
    assert image == "registry.local/memorygraph:pinned"
    assert _conditions(api)["Paused"]["status"] == "False"
    assert ("Normal", "Paused") in _events(api) and ("Normal", "Resumed") in _events(api)


async def test_restart_annotation_rolls_the_pods(api: ApiServer, memo: kopf.Memo) -> None:
    _graph(api)
    await _reconcile(memo)
    api.edit(
        GRAPHS,
        NS,
        "chat-memory",
        {"metadata": {"annotations": {"memorygraph.io/restartedAt": "2026-03-01T10:00:00Z"}}},
    )
    await _reconcile(memo)
    annotations = api.read(STS, NS, "chat-memory")["spec"]["template"]["metadata"]["annotations"]  # type: ignore[index]
    assert annotations["memorygraph.io/restartedAt"] == "2026-03-01T10:00:00Z"


async def test_invalid_spec_is_reported_once_without_retries(
    api: ApiServer, memo: kopf.Memo
) -> None:
    _graph(api, {"replicas": 9, "autoscaling": {"enabled": True, "maxReplicas": 3}})
    with pytest.raises(kopf.PermanentError, match="replicas must lie within"):
        await on_graph(name="chat-memory", namespace=NS, memo=memo, logger=log)
    conds = _conditions(api)
    assert conds["Ready"]["status"] == "False" and conds["Ready"]["reason"] == "InvalidSpec"
    assert conds["Degraded"]["status"] == "True"
    assert api.read(STS, NS, "chat-memory") is None
    api.writes.clear()
    with pytest.raises(kopf.PermanentError):
        await on_graph(name="chat-memory", namespace=NS, memo=memo, logger=log)
    await resync_all(memo, log)  # the periodic resync meets the same invalid spec
    assert api.writes == []
    assert _events(api).count(("Warning", "InvalidSpec")) == 1


async def test_autoscaling_hands_replicas_to_the_hpa_without_scaling_in(
    api: ApiServer, memo: kopf.Memo
) -> None:
    _graph(api, {"replicas": 2})
    await _reconcile(memo)
    api.edit(
        GRAPHS,
        NS,
        "chat-memory",
        {"spec": {"autoscaling": {"enabled": True, "minReplicas": 2, "maxReplicas": 5}}},
    )
    await _reconcile(memo)

    sts = api.read(STS, NS, "chat-memory")
    assert sts is not None and sts["spec"]["replicas"] == 2
    hpa = api.read("autoscaling/v2/horizontalpodautoscalers", NS, "chat-memory")
    assert hpa is not None and hpa["spec"]["maxReplicas"] == 5
    api.edit(STS, NS, "chat-memory", {"spec": {"replicas": 4}})  # the HPA scales out
    await _reconcile(memo)
    assert api.read(STS, NS, "chat-memory")["spec"]["replicas"] == 4  # type: ignore[index]


async def test_children_no_longer_wanted_are_pruned_but_foreign_objects_are_not(
    api: ApiServer, memo: kopf.Memo
) -> None:
    spec = {
        "replicas": 2,
        "archival": {"destination": {"s3": {"bucket": "arch", "secretRef": {"name": "s3"}}}},
    }
    _graph(api, spec)
    api.store(
        "networking.k8s.io/v1/networkpolicies",
        {"metadata": {"name": "chat-memory", "namespace": NS}, "spec": {"podSelector": {}}},
    )
    await _reconcile(memo)
    assert api.read("batch/v1/cronjobs", NS, "chat-memory-archival") is not None
    assert api.read("policy/v1/poddisruptionbudgets", NS, "chat-memory") is not None

    api.edit(GRAPHS, NS, "chat-memory", {"spec": {"archival": None, "replicas": 1}})
    await _reconcile(memo)
    assert api.read("batch/v1/cronjobs", NS, "chat-memory-archival") is None
    assert api.read("policy/v1/poddisruptionbudgets", NS, "chat-memory") is None
    assert api.read("networking.k8s.io/v1/networkpolicies", NS, "chat-memory") is not None


async def test_generated_api_keys_are_created_once_and_kept(
    api: ApiServer, memo: kopf.Memo
) -> None:
    _graph(api, {"auth": {"enabled": True}})
    await _reconcile(memo)
    secret = api.read("v1/secrets", NS, "chat-memory-api-keys")
    assert secret is not None
    await _reconcile(memo)
    assert api.read("v1/secrets", NS, "chat-memory-api-keys") == secret
    api.edit(GRAPHS, NS, "chat-memory", {"spec": {"auth": {"enabled": False}}})
    await _reconcile(memo)
    assert api.read("v1/secrets", NS, "chat-memory-api-keys") is None


async def test_storage_growth_expands_volumes_and_recreates_the_statefulset(
    api: ApiServer, memo: kopf.Memo
) -> None:
    _graph(api, {"storage": {"size": "10Gi"}})
    await _reconcile(memo)
    api.store(
        "v1/persistentvolumeclaims",
        {
            "metadata": {"name": "data-chat-memory-0", "namespace": NS},
            "spec": {"resources": {"requests": {"storage": "10Gi"}}},
        },
    )
    api.edit(GRAPHS, NS, "chat-memory", {"spec": {"storage": {"size": "20Gi"}}})
    await _reconcile(memo)

    pvc = api.read("v1/persistentvolumeclaims", NS, "data-chat-memory-0")
    assert pvc["spec"]["resources"]["requests"]["storage"] == "20Gi"  # type: ignore[index]
    sts = api.read(STS, NS, "chat-memory")
    assert (
        sts["spec"]["volumeClaimTemplates"][0]["spec"]["resources"]["requests"]["storage"] == "20Gi"
    )  # type: ignore[index]
    assert ("Normal", "StorageExpanded") in _events(api)


async def test_storage_size_in_another_notation_recreates_nothing(
    api: ApiServer, memo: kopf.Memo
) -> None:
    _graph(api, {"storage": {"size": "1.5Gi"}})
    await _reconcile(memo)
    # The API server stores quantities in canonical form and hands them back that way.
    sts = api.read(STS, NS, "chat-memory")
    assert sts is not None
    claim = copy.deepcopy(sts["spec"]["volumeClaimTemplates"])
    claim[0]["spec"]["resources"]["requests"]["storage"] = "1536Mi"
    api.edit(STS, NS, "chat-memory", {"spec": {"volumeClaimTemplates": claim}})
    uid = sts["metadata"]["uid"]

    await _reconcile(memo)
    assert api.read(STS, NS, "chat-memory")["metadata"]["uid"] == uid  # type: ignore[index]
    assert ("Normal", "StorageExpanded") not in _events(api)


async def test_service_monitor_only_when_its_crd_is_served(api: ApiServer, memo: kopf.Memo) -> None:
    _graph(api, {"monitoring": {"serviceMonitor": {"enabled": True}}})
    await _reconcile(memo)
    assert _conditions(api)["Degraded"]["reason"] == "ServiceMonitorUnavailable"
    api.resources["monitoring.coreos.com/v1/servicemonitors"] = {"namespaced": True}
    await _reconcile(memo)
    assert api.read("monitoring.coreos.com/v1/servicemonitors", NS, "chat-memory") is not None
    assert _conditions(api)["Degraded"]["status"] == "False"


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


async def test_periodic_resync_repairs_children_nobody_watches(
    api: ApiServer, memo: kopf.Memo
) -> None:
    _graph(api, {"networkPolicy": {"enabled": True}})
    await _reconcile(memo)
    api.edit("networking.k8s.io/v1/networkpolicies", NS, "chat-memory", {"spec": {"ingress": None}})
    await resync_all(memo, log)
    policy = api.read("networking.k8s.io/v1/networkpolicies", NS, "chat-memory")
    assert policy is not None and len(policy["spec"]["ingress"]) == 2


async def test_gitops_labels_and_annotations_never_reach_the_children(
    api: ApiServer, memo: kopf.Memo
) -> None:
    _graph(
        api,
        labels={"app.kubernetes.io/instance": "team-app", "team": "a"},
        annotations={
            "argocd.argoproj.io/tracking-id": "team-app:mg/x",
            "meta.helm.sh/release-name": "r",
        },
    )
    await _reconcile(memo)
    for (res, _, _), obj in list(api.objects.items()):
        if res.plural in ("memorygraphs", "events") or obj.deleted:
            continue
        meta = obj["metadata"]
        assert "app.kubernetes.io/instance" not in meta.get("labels", {}), res.plural
        assert "team" not in meta.get("labels", {}), res.plural
        assert not any(
            k.startswith(("argocd.", "meta.helm.sh")) for k in meta.get("annotations", {})
        )


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


async def test_a_child_the_api_server_rejects_degrades_the_graph_but_not_the_others(
    api: ApiServer, memo: kopf.Memo
) -> None:
    _graph(api, {"replicas": 2})
    api.reject["poddisruptionbudgets"] = "admission webhook denied the request"
    await _reconcile(memo)
    conds = _conditions(api)
    assert conds["Degraded"]["reason"] == "ApplyFailed"
    assert "admission webhook denied" in conds["Degraded"]["message"]
    assert api.read(STS, NS, "chat-memory") is not None


async def test_initial_listing_of_children_does_not_trigger_reconciles(
    api: ApiServer, memo: kopf.Memo
) -> None:
    _graph(api)
    await _reconcile(memo)
    api.edit(STS, NS, "chat-memory", {"spec": {"replicas": 7}})
    api.writes.clear()
    await on_child(
        type=None, body=api.read(STS, NS, "chat-memory"), namespace=NS, memo=memo, logger=log
    )
    assert api.writes == []
