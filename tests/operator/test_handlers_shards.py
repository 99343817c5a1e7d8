"""Where a graph's shards live: the shard map the operator writes, its peer key, scaling out
and a scale-in that waits while the leaving pods own shards, and graphs made before maps."""

from __future__ import annotations

import json
from typing import Any

import kopf
import pytest
from apiserver import ApiServer, resource
from handler_support import (
    NS,
    STS,
    _conditions,
    _events,
    _graph,
    _pods_ready,
    _reconcile,
    volumes_bound,
)
from memorygraph.store.cluster import read_cluster_map
from memorygraph_operator.errors import Invalid
from memorygraph_operator.render import GraphInputs, ShardMap, plan_shard_map
from operator_support import GRAPHS
from pods_double import PodsDouble
from test_handlers_watched import CHILD_KINDS, LiveIndex, _plugins_now
from test_render_golden import CASES
from test_render_golden import _graph as _rendered_graph

pytestmark = pytest.mark.asyncio

CONFIGMAPS = "v1/configmaps"


def _map(api: ApiServer) -> dict[str, Any]:
    cm = api.read(CONFIGMAPS, NS, "chat-memory-shards")
    assert cm is not None
    return dict(json.loads(cm["data"]["map.json"]))


def _replicas(api: ApiServer) -> int:
    sts = api.read(STS, NS, "chat-memory")
    assert sts is not None
    return int(sts["spec"]["replicas"])


async def test_a_new_graph_spreads_its_shards_and_scales_out_with_empty_pods(
    api: ApiServer, memo: kopf.Memo, tmp_path: Any
) -> None:
    graph = _graph(api, {"replicas": 2})
    await _reconcile(memo)
    shard_map = _map(api)
    assert (shard_map["epoch"], shard_map["shards"]) == (1, 64)
    assert shard_map["owners"] == [s % 2 for s in range(64)]
    assert shard_map["graph"] == graph["metadata"]["uid"]
    assert shard_map["members"][1] == {
        "address": "chat-memory-1.chat-memory-headless.apps.svc:50051",
        "peer": "chat-memory-1.chat-memory-headless.apps.svc:50052",
    }
    # The data plane reads it as written.
    path = tmp_path / "map.json"
    path.write_text(json.dumps(shard_map))
    assert read_cluster_map(path).owners == tuple(shard_map["owners"])
    peer = api.read("v1/secrets", NS, "chat-memory-peer")
    assert peer is not None and peer["stringData"]["key"].startswith("mgp_")
    assert ("Normal", "PeerKeyGenerated") in _events(api)

    await _reconcile(memo)  # unchanged: the same map, the same key
    assert _map(api) == shard_map
    assert api.read("v1/secrets", NS, "chat-memory-peer") == peer

    api.edit(GRAPHS, NS, "chat-memory", {"spec": {"replicas": 3}})
    await _reconcile(memo)
    grown = _map(api)
    assert (grown["epoch"], len(grown["members"]), grown["owners"]) == (2, 3, shard_map["owners"])
    assert _replicas(api) == 3


async def test_the_epochs_of_shards_moved_between_pods_are_kept_in_every_later_map(
    api: ApiServer, memo: kopf.Memo, tmp_path: Any
) -> None:
    _graph(api, {"replicas": 2})
    await _reconcile(memo)
    moved = _map(api)  # shard 0 moved from pod 0 to pod 1, as the map records a move
    moved["owners"][0], moved["shard_epochs"] = 1, [1] + [0] * 63
    moved["epoch"] = 2
    api.edit(CONFIGMAPS, NS, "chat-memory-shards", {"data": {"map.json": json.dumps(moved)}})
    api.edit(GRAPHS, NS, "chat-memory", {"spec": {"replicas": 3}})
    await _reconcile(memo)
    grown = _map(api)
    assert (grown["epoch"], len(grown["members"])) == (3, 3)
    assert (grown["owners"], grown["shard_epochs"]) == (moved["owners"], moved["shard_epochs"])
    path = tmp_path / "map.json"  # and the data plane reads it so
    path.write_text(json.dumps(grown))
    assert read_cluster_map(path).shard_epochs == (1,) + (0,) * 63


async def test_a_scale_in_waits_for_moves_while_the_pods_do_not_answer(
    api: ApiServer, memo: kopf.Memo
) -> None:
    _graph(api, {"replicas": 2})
    await _reconcile(memo)
    api.edit(GRAPHS, NS, "chat-memory", {"spec": {"replicas": 4}})
    await _reconcile(memo)
    volumes_bound(api, 4)  # the four pods ran
    # Pods 2 and 3 own nothing: they may go; pod 1 owns shards, which must move first, and the
    # pods do not answer (here: never), so it stays and the graph says why.
    api.edit(GRAPHS, NS, "chat-memory", {"spec": {"replicas": 1}})
    await _reconcile(memo)
    _pods_ready(api)
    await _reconcile(memo)
    shard_map = _map(api)
    # Not even pods 2 and 3, which own nothing by the map, go: they may have been handed a
    # shard behind its back, and do not say.
    assert (shard_map["epoch"], len(shard_map["members"])) == (2, 4)
    assert _replicas(api) == 4
    conditions = _conditions(api)
    assert conditions["Degraded"]["status"] == "False"
    rebalancing = conditions["Rebalancing"]
    assert (rebalancing["status"], rebalancing["reason"]) == ("True", "WaitingForPods")
    assert "pod 0: failed to connect" in rebalancing["message"]
    assert "shards per pod 32/32" in rebalancing["message"]
    progressing = conditions["Progressing"]
    assert (progressing["status"], progressing["reason"]) == ("True", "Rebalancing")
    assert conditions["Ready"]["status"] == "True"  # every shard is served meanwhile
    api.edit(GRAPHS, NS, "chat-memory", {"spec": {"replicas": 2}})
    await _reconcile(memo)
    rebalancing = _conditions(api)["Rebalancing"]
    assert rebalancing["reason"] == "WaitingForPods"
    assert "scaling in to 2 pods waits: pod 2 does not answer" in rebalancing["message"]
    assert "pod 3 does not answer" in rebalancing["message"]
    # Once they answer, owning nothing, they go.
    memo.peers = PodsDouble([s % 2 for s in range(64)], 4)
    await _reconcile(memo)
    assert _conditions(api)["Rebalancing"]["reason"] == "Balanced"
    assert (_map(api)["epoch"], len(_map(api)["members"]), _replicas(api)) == (3, 2, 2)


async def test_pods_that_never_ran_leave_without_answering(api: ApiServer, memo: kopf.Memo) -> None:
    _graph(api, {"replicas": 2})
    await _reconcile(memo)
    volumes_bound(api, 2)
    api.edit(GRAPHS, NS, "chat-memory", {"spec": {"replicas": 4}})
    await _reconcile(memo)  # pods 2 and 3 never start (unschedulable): no volume bound
    api.edit(GRAPHS, NS, "chat-memory", {"spec": {"replicas": 2}})
    await _reconcile(memo)
    assert (len(_map(api)["members"]), _replicas(api)) == (2, 2)


def _pvc(index: int) -> dict[str, Any]:
    return {
        "metadata": {
            "name": f"data-chat-memory-{index}",
            "namespace": NS,
            "labels": {
                "app.kubernetes.io/name": "memorygraph",
                "memorygraph.io/graph": "chat-memory",
            },
        }
    }


def _made_before_maps(api: ApiServer, pods: int) -> None:
    """A graph asking for 2 pods whose StatefulSet and volumes (``pods`` of them) an operator
    of before shard maps made."""
    graph = _graph(api, {"replicas": 2})
    owner = {
        "apiVersion": "memorygraph.io/v1alpha1",
        "kind": "MemoryGraph",
        "name": "chat-memory",
        "uid": graph["metadata"]["uid"],
        "controller": True,
    }
    api.store(
        STS,
        {
            "metadata": {"name": "chat-memory", "namespace": NS, "ownerReferences": [owner]},
            "spec": {"replicas": pods},
        },
    )
    for index in range(pods):
        api.store("v1/persistentvolumeclaims", _pvc(index))


async def test_a_graph_made_before_maps_gets_one_only_if_one_pod_held_its_data(
    api: ApiServer, memo: kopf.Memo
) -> None:
    _made_before_maps(api, pods=2)
    await _reconcile(memo)
    # Two independent stores: no map, the pods left as they were, and said so.
    assert api.read(CONFIGMAPS, NS, "chat-memory-shards") is None
    config = api.read(CONFIGMAPS, NS, "chat-memory-config")
    assert config is not None and "cluster" not in config["data"]["memorygraph.yaml"]
    assert _conditions(api)["Degraded"]["reason"] == "IndependentStores"


async def test_a_one_pod_graph_made_before_maps_keeps_every_shard_on_its_pod(
    api: ApiServer, memo: kopf.Memo
) -> None:
    _made_before_maps(api, pods=1)
    await _reconcile(memo)
    shard_map = _map(api)
    assert set(shard_map["owners"]) == {0} and len(shard_map["members"]) == 2
    assert _replicas(api) == 2


@pytest.mark.parametrize(
    ("current", "replicas", "members", "held"),
    [
        (ShardMap(1, (0, 1, 0, 1), 2), 2, 2, False),
        (ShardMap(1, (0, 1, 0, 1), 2), 5, 5, False),
        (ShardMap(1, (0, 1, 0, 1), 5), 1, 2, True),
        (ShardMap(1, (0, 0, 0, 0), 3), 1, 1, False),
        (ShardMap(1, (0, 1, 0, 1), 2), 0, 2, False),  # all pods stopped: the map stays
    ],
)
async def test_the_next_map_keeps_every_owner(
    current: ShardMap, replicas: int, members: int, held: bool
) -> None:  # `held`: pods kept until the moves have emptied them
    manifest, plugins, _ = CASES["minimal"]
    g: GraphInputs = _rendered_graph(manifest, plugins)
    spec = g.spec.model_copy(update={"replicas": replicas, "shards": 4})
    # The pods answered: the map may shrink as far as the owners allow.
    keep = max(replicas, 1)
    plan = plan_shard_map(GraphInputs(g.name, g.namespace, g.uid, spec), current, None, None, keep)
    assert plan.shard_map is not None
    assert plan.shard_map.owners == current.owners and plan.shard_map.members == members
    assert plan.held is None
    assert (0 < replicas < members) == held
    assert plan.shard_map.epoch == current.epoch + (members != current.members)


class _Lagging(LiveIndex):
    """A watch that has not delivered the objects named in ``hidden`` yet."""

    hidden: frozenset[str] = frozenset()

    def _objects(self):  # type: ignore[no-untyped-def]
        return {k: v for k, v in super()._objects().items() if k[1] not in self.hidden}


def _lagging_watches(api: ApiServer, memo: kopf.Memo) -> dict[str, _Lagging]:
    children = {kind: _Lagging(api, kind) for kind in CHILD_KINDS}
    memo.reads.use_watches(children, _plugins_now(api), 60.0)
    return children


async def test_watches_that_lag_behind_never_make_the_map_over(
    api: ApiServer, memo: kopf.Memo
) -> None:
    """Scaled out before the watches show the map or the StatefulSet: the map grows; it is
    never made again from scratch (other owners at the same epoch)."""
    watches = _lagging_watches(api, memo)
    _graph(api, {"replicas": 2})
    await _reconcile(memo)
    first = _map(api)
    watches["ConfigMap"].hidden = frozenset({"chat-memory-shards"})
    watches["StatefulSet"].hidden = frozenset({"chat-memory"})
    api.edit(GRAPHS, NS, "chat-memory", {"spec": {"replicas": 3}})
    await _reconcile(memo)
    grown = _map(api)
    assert grown["owners"] == first["owners"] and grown["epoch"] == 2
    assert _conditions(api)["Degraded"]["status"] == "False"


async def test_a_lost_map_changes_nothing_the_pods_use(api: ApiServer, memo: kopf.Memo) -> None:
    _graph(api, {"replicas": 2})
    await _reconcile(memo)
    _pods_ready(api)
    await _reconcile(memo)
    before = {ref: api.read(ref, NS, name) for ref, name in _POD_INPUTS}
    api._delete(resource(CONFIGMAPS), NS, "chat-memory-shards", {})  # by hand
    api.edit(GRAPHS, NS, "chat-memory", {"spec": {"replicas": 3}})
    await _reconcile(memo)
    assert {ref: api.read(ref, NS, name) for ref, name in _POD_INPUTS} == before
    assert _conditions(api)["Degraded"]["reason"] == "ShardMapMissing"
    graph = api.read(GRAPHS, NS, "chat-memory")
    assert graph is not None and graph["status"]["replicas"] == 2  # the pods still there


_POD_INPUTS = (
    (STS, "chat-memory"),
    (CONFIGMAPS, "chat-memory-config"),
    ("networking.k8s.io/v1/networkpolicies", "chat-memory"),
    ("v1/services", "chat-memory-headless"),
)


async def test_a_map_the_api_server_refuses_holds_the_pods(api: ApiServer, memo: kopf.Memo) -> None:
    _graph(api, {"replicas": 2})
    await _reconcile(memo)
    apply = memo.kube.apply

    async def refusing(body: dict[str, Any], *args: Any, **kwargs: Any) -> Any:
        if body["metadata"]["name"] == "chat-memory-shards":
            raise Invalid("admission webhook denied the request")
        return await apply(body, *args, **kwargs)

    memo.kube.apply = refusing
    api.edit(GRAPHS, NS, "chat-memory", {"spec": {"replicas": 3}})
    await _reconcile(memo)
    assert _replicas(api) == 2 and len(_map(api)["members"]) == 2
    assert _conditions(api)["Degraded"]["reason"] == "ApplyFailed"
    memo.kube.apply = apply
    await _reconcile(memo)  # the map the API server holds, not the one refused, is the base
    assert _replicas(api) == 3 and (_map(api)["epoch"], len(_map(api)["members"])) == (2, 3)


async def test_an_autoscaled_graph_scales_in_to_its_minimum_unheld(
    api: ApiServer, memo: kopf.Memo
) -> None:
    spec = {"replicas": 3, "autoscaling": {"enabled": True, "minReplicas": 1, "maxReplicas": 4}}
    _graph(api, spec)
    await _reconcile(memo)
    assert set(_map(api)["owners"]) == {0}  # spread over the pods it never goes below
    memo.peers = PodsDouble([0] * 64, 3)  # its pods answer
    api.edit(GRAPHS, NS, "chat-memory", {"spec": {"replicas": 1}})
    await _reconcile(memo)
    assert _replicas(api) == 1 and _conditions(api)["Degraded"]["status"] == "False"


async def test_a_held_scale_in_keeps_the_disruption_budget(api: ApiServer, memo: kopf.Memo) -> None:
    _graph(api, {"replicas": 3})
    await _reconcile(memo)
    api.edit(GRAPHS, NS, "chat-memory", {"spec": {"replicas": 1}})
    await _reconcile(memo)
    assert _replicas(api) == 3
    assert api.read("policy/v1/poddisruptionbudgets", NS, "chat-memory") is not None
