"""What the handlers do to a graph's children: pruning, keys, volumes, repairs, rejections."""

from __future__ import annotations

import copy

import kopf
import pytest
from apiserver import ApiServer
from handler_support import NS, STS, _conditions, _events, _graph, _reconcile, log
from memorygraph_operator.handlers import on_child, resync_all
from operator_support import GRAPHS

pytestmark = pytest.mark.asyncio


async def test_children_no_longer_wanted_are_pruned_but_foreign_objects_are_not(
    api: ApiServer, memo: kopf.Memo
) -> None:
    spec = {
        "replicas": 2,
        "archival": {"destination": {"s3": {"bucket": "arch", "secretRef": {"name": "s3"}}}},
        "networkPolicy": {"enabled": False},
    }
    _graph(api, spec)
    api.store(
        "networking.k8s.io/v1/networkpolicies",
        {"metadata": {"name": "chat-memory", "namespace": NS}, "spec": {"podSelector": {}}},
    )
    await _reconcile(memo)
    assert api.read("batch/v1/cronjobs", NS, "chat-memory-archival") is not None
    assert api.read("policy/v1/poddisruptionbudgets", NS, "chat-memory") is not None

    api.edit(
        GRAPHS,
        NS,
        "chat-memory",
        {"spec": {"archival": None, "podDisruptionBudget": {"enabled": False}}},
    )
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
    keys = secret["stringData"]["api-keys"].split()
    assert len(keys) == 2 and all(key.startswith("mgk_") for key in keys)
    await _reconcile(memo)
    assert api.read("v1/secrets", NS, "chat-memory-api-keys") == secret
    # Switched off and on again, the same keys come back: the operator never deletes Secrets
    # (garbage collection removes this one with its graph).
    api.edit(GRAPHS, NS, "chat-memory", {"spec": {"auth": {"enabled": False}}})
    await _reconcile(memo)
    assert api.read("v1/secrets", NS, "chat-memory-api-keys") == secret
    api.edit(GRAPHS, NS, "chat-memory", {"spec": {"auth": None}})
    await _reconcile(memo)
    assert api.read("v1/secrets", NS, "chat-memory-api-keys") == secret
    assert not [c for c in api.calls if c[0] == "delete" and c[2] == "secrets"]


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


async def test_periodic_resync_repairs_children_nobody_watches(
    api: ApiServer, memo: kopf.Memo
) -> None:
    _graph(api)
    await _reconcile(memo)
    api.edit("networking.k8s.io/v1/networkpolicies", NS, "chat-memory", {"spec": {"ingress": None}})
    await resync_all(memo, log)
    policy = api.read("networking.k8s.io/v1/networkpolicies", NS, "chat-memory")
    assert policy is not None and len(policy["spec"]["ingress"]) == 2  # gRPC and peers


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
