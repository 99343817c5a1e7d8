"""Graph handlers against a fake API server: creation, readiness, updates, pauses, bad specs."""

from __future__ import annotations

import copy
from typing import Any

import kopf
import pytest
from apiserver import ApiServer
from handler_support import NS, STS, _conditions, _events, _graph, _pods_ready, _reconcile, log
from memorygraph_operator.handlers import on_child, on_graph, resync_all
from memorygraph_operator.render.image import DEFAULT_IMAGE
from operator_support import GRAPHS, PLUGINS, load_example

pytestmark = pytest.mark.asyncio


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


def _replicas_set_by(manager: str, operation: str = "Update") -> dict[str, Any]:
    """The StatefulSet's managed fields once `manager` set its replicas and the operator's
    apply no longer holds them (as a real API server records it)."""
    return {
        "managedFields": [
            {"manager": "memorygraph-operator", "operation": "Apply", "fieldsV1": {}},
            {
                "manager": manager,
                "operation": operation,
                "fieldsV1": {"f:spec": {"f:replicas": {}}},
            },
        ]
    }


async def test_autoscaling_scales_the_graph_and_the_operator_applies_its_replicas(
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

    hpa = api.read("autoscaling/v2/horizontalpodautoscalers", NS, "chat-memory")
    assert hpa is not None and hpa["spec"]["maxReplicas"] == 5
    assert hpa["spec"]["scaleTargetRef"] == {
        "apiVersion": "memorygraph.io/v1alpha1",
        "kind": "MemoryGraph",
        "name": "chat-memory",
    }
    assert api.read(STS, NS, "chat-memory")["spec"]["replicas"] == 2  # type: ignore[index]
    api.edit(GRAPHS, NS, "chat-memory", {"spec": {"replicas": 4}})  # the HPA scales out
    await _reconcile(memo)
    assert api.read(STS, NS, "chat-memory")["spec"]["replicas"] == 4  # type: ignore[index]
    # `kubectl scale sts` within the bounds: not the way to scale a graph, set back.
    api.edit(
        STS, NS, "chat-memory", {"spec": {"replicas": 3}, "metadata": _replicas_set_by("kubectl")}
    )
    await _reconcile(memo)
    assert api.read(STS, NS, "chat-memory")["spec"]["replicas"] == 4  # type: ignore[index]
    assert api.read(GRAPHS, NS, "chat-memory")["spec"]["replicas"] == 4  # type: ignore[index]
    assert ("Normal", "ReplicasAdopted") not in _events(api)


@pytest.mark.parametrize(
    ("manager", "operation"),
    [("memorygraph-operator-handover", "Apply"), ("kube-controller-manager", "Update")],
    ids=["hand-over", "hpa"],
)
async def test_a_statefulset_an_older_operators_hpa_scaled_keeps_its_pods(
    api: ApiServer, memo: kopf.Memo, manager: str, operation: str
) -> None:
    autoscaling = {"enabled": True, "minReplicas": 2, "maxReplicas": 5}
    _graph(api, {"replicas": 2, "autoscaling": autoscaling})
    await _reconcile(memo)
    # As an earlier version left it: its autoscaling set the StatefulSet's replicas to 4.
    api.edit(
        STS,
        NS,
        "chat-memory",
        {"spec": {"replicas": 4}, "metadata": _replicas_set_by(manager, operation)},
    )
    await _reconcile(memo)

    graph = api.read(GRAPHS, NS, "chat-memory")
    assert graph is not None and graph["spec"]["replicas"] == 4
    assert api.read(STS, NS, "chat-memory")["spec"]["replicas"] == 4  # type: ignore[index]
    assert _events(api).count(("Normal", "ReplicasAdopted")) == 1
    # The operator's apply holds replicas now (shared with the earlier manager, the value being
    # the same): the HPA's next choice for the graph goes to the StatefulSet, adopted no more.
    shared = _replicas_set_by(manager, operation)
    shared["managedFields"][0]["fieldsV1"] = {"f:spec": {"f:replicas": {}}}
    api.edit(STS, NS, "chat-memory", {"metadata": shared})
    api.edit(GRAPHS, NS, "chat-memory", {"spec": {"replicas": 5}})
    await _reconcile(memo)
    assert api.read(STS, NS, "chat-memory")["spec"]["replicas"] == 5  # type: ignore[index]
    assert api.read(GRAPHS, NS, "chat-memory")["spec"]["replicas"] == 5  # type: ignore[index]
    assert _events(api).count(("Normal", "ReplicasAdopted")) == 1
