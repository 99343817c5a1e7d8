"""The operator moves a graph's shards between its pods: onto new pods after a scale-out, off
leaving pods before a scale-in, recorded in the map with each shard's epoch; a move under way is
kept with the map and finished first after a restart; a move that keeps failing is reported
(condition, Warning Event, metric) and retried with a growing pause; the status says where the
shards are. The pods here are :class:`PodsDouble`; real pods: ``test_operator_moves.py``."""

from __future__ import annotations

import asyncio
import base64
import json
from typing import Any

import kopf
import pytest
from apiserver import ApiServer
from handler_support import (
    NS,
    _conditions,
    _events,
    _graph,
    _pods_ready,
    _reconcile,
    log,
    volumes_bound,
)
from memorygraph_operator import handlers
from memorygraph_operator.reconcile import moves
from operator_support import GRAPHS
from pods_double import PodsDouble
from prometheus_client import REGISTRY

pytestmark = pytest.mark.asyncio

CONFIGMAPS = "v1/configmaps"


def _cm(api: ApiServer) -> dict[str, str]:
    cm = api.read(CONFIGMAPS, NS, "chat-memory-shards")
    assert cm is not None
    return dict(cm["data"])


def _map(api: ApiServer) -> dict[str, Any]:
    return dict(json.loads(_cm(api)["map.json"]))


def _replicas(api: ApiServer) -> int:
    sts = api.read("apps/v1/statefulsets", NS, "chat-memory")
    assert sts is not None
    return int(sts["spec"]["replicas"])


def _status(api: ApiServer) -> dict[str, Any]:
    graph = api.read(GRAPHS, NS, "chat-memory")
    assert graph is not None
    return dict(graph["status"])


def _peer_key(api: ApiServer) -> str:
    secret = api.read("v1/secrets", NS, "chat-memory-peer")
    assert secret is not None
    return base64.b64decode(secret["data"]["key"]).decode()


async def _one_pod_graph(api: ApiServer, memo: kopf.Memo, shards: int = 64) -> PodsDouble:
    """A graph of one pod, reconciled, whose pods answer with its peer key."""
    _graph(api, {"replicas": 1, "shards": shards})
    await _reconcile(memo)
    pods = PodsDouble([0] * shards, 1, key=_peer_key(api))
    memo.peers = pods
    return pods


async def _scaled_out_to_two(api: ApiServer, memo: kopf.Memo, shards: int = 64) -> PodsDouble:
    """A graph of one pod scaled out to two, both up and serving by the map of two."""
    pods = await _one_pod_graph(api, memo, shards)
    api.edit(GRAPHS, NS, "chat-memory", {"spec": {"replicas": 2}})
    await _reconcile(memo)
    pods.members = pods.running = 2
    return pods


async def test_a_scale_out_spreads_the_shards_once_every_pod_knows_the_map(
    api: ApiServer, memo: kopf.Memo
) -> None:
    pods = await _one_pod_graph(api, memo)
    assert _conditions(api)["Rebalancing"]["reason"] == "Balanced"

    api.edit(GRAPHS, NS, "chat-memory", {"spec": {"replicas": 3}})
    await _reconcile(memo)
    # The map names three pods; the pods do not serve by it yet: nothing moves.
    assert len(_map(api)["members"]) == 3 and _replicas(api) == 3
    rebalancing = _conditions(api)["Rebalancing"]
    assert (rebalancing["status"], rebalancing["reason"]) == ("True", "WaitingForPods")
    assert "pod 1: failed to connect" in rebalancing["message"]
    assert not [a for a in pods.asked if a.startswith("take")]

    pods.members = pods.running = 3  # the new pods are up, and every pod has the map
    _pods_ready(api)
    await _reconcile(memo)
    assert sorted(pods.spread()) == [21, 21, 22]
    shard_map = _map(api)
    assert shard_map["owners"] == pods.owners and shard_map["shard_epochs"] == pods.epochs
    assert shard_map["epoch"] == 2 + 42  # one per move
    assert "move.json" not in _cm(api)
    status = _status(api)
    assert status["shards"]["perPod"] == [22, 21, 21] and status["shards"]["moves"] == 42
    conditions = _conditions(api)
    assert (conditions["Rebalancing"]["status"], conditions["Rebalancing"]["reason"]) == (
        "False",
        "Balanced",
    )
    assert conditions["Progressing"]["status"] == "False"
    assert ("Normal", "WaitingForPods") in _events(api) and ("Normal", "Balanced") in _events(api)
    assert memo.again.get((NS, "chat-memory")) is None or memo.again[(NS, "chat-memory")][0] > 0

    # Balanced: a later reconcile asks no pod.
    asked = len(pods.asked)
    await _reconcile(memo)
    assert len(pods.asked) == asked


async def test_a_scale_in_empties_the_leaving_pods_before_the_statefulset_shrinks(
    api: ApiServer, memo: kopf.Memo
) -> None:
    _graph(api, {"replicas": 3})
    await _reconcile(memo)
    pods = PodsDouble([s % 3 for s in range(64)], 3, key=_peer_key(api))
    memo.peers = pods
    api.edit(GRAPHS, NS, "chat-memory", {"spec": {"replicas": 2}})
    await _reconcile(memo)
    assert pods.spread()[2] == 0 and sorted(pods.spread()[:2]) == [32, 32]
    # The pods' answers predate the moves: pod 2 goes only once it is asked again, by the
    # reconcile asked for at once.
    assert (
        _replicas(api) == 3
        and memo.again[(NS, "chat-memory")][0] <= asyncio.get_running_loop().time()
    )
    await _reconcile(memo)
    shard_map = _map(api)
    assert len(shard_map["members"]) == 2 and 2 not in shard_map["owners"]
    assert _replicas(api) == 2
    # Shards were only taken off the leaving pod: 21 moves.
    assert sum(shard_map["shard_epochs"]) == 21


async def test_a_move_made_behind_the_operators_back_is_recorded_and_not_lost_on_scale_in(
    api: ApiServer, memo: kopf.Memo
) -> None:
    _graph(api, {"replicas": 3})
    await _reconcile(memo)
    pods = PodsDouble([s % 3 for s in range(64)], 3, key=_peer_key(api))
    memo.peers = pods
    pods.move(0, 2)  # by hand (or an answer lost): the map still says pod 0
    api.edit(GRAPHS, NS, "chat-memory", {"spec": {"replicas": 2}})
    await _reconcile(memo)
    await _reconcile(memo)  # asked again after the moves
    assert pods.owners[0] != 2 and pods.epochs[0] == 2  # moved there, then off again
    assert _map(api)["owners"] == pods.owners and _replicas(api) == 2


@pytest.mark.parametrize("answering", [True, False], ids=["answering", "silent"])
async def test_a_pod_handed_a_shard_behind_the_maps_back_never_leaves_with_it(
    api: ApiServer, memo: kopf.Memo, answering: bool
) -> None:
    _graph(api, {"replicas": 2})
    await _reconcile(memo)
    pods = PodsDouble([s % 2 for s in range(64)], 2, key=_peer_key(api))
    memo.peers = pods
    api.edit(GRAPHS, NS, "chat-memory", {"spec": {"replicas": 3}})
    await _reconcile(memo)
    pods.members = pods.running = 3
    pods.refuse = "not now"  # the scale-out's moves do not happen
    await _reconcile(memo)
    pods.refuse = None
    memo.again.clear()
    api.edit(CONFIGMAPS, NS, "chat-memory-shards", {"data": {"move.json": None}})
    pods.move(0, 2)  # by hand: the map still says pod 0, and records no move
    volumes_bound(api, 3)  # the pods ran
    pods.running = 3 if answering else 2
    api.edit(GRAPHS, NS, "chat-memory", {"spec": {"replicas": 2}})
    await _reconcile(memo)
    await _reconcile(memo)  # asked again after the moves
    if answering:  # seen, moved off, then the pod goes
        assert pods.owners[0] != 2 and _replicas(api) == 2
        assert 2 not in _map(api)["owners"] and len(_map(api)["members"]) == 2
    else:  # it does not say what it owns: it stays
        assert _replicas(api) == 3 and len(_map(api)["members"]) == 3
        rebalancing = _conditions(api)["Rebalancing"]
        assert rebalancing["status"] == "True" and "pod 2:" in rebalancing["message"]


async def test_a_leaving_pod_stays_while_a_move_from_it_or_its_writes_are_unfinished(
    api: ApiServer, memo: kopf.Memo
) -> None:
    _graph(api, {"replicas": 3})
    await _reconcile(memo)
    pods = PodsDouble([s % 3 for s in range(64)], 3, key=_peer_key(api))
    memo.peers = pods
    # Pod 2 leaves: every shard of it moved to pod 0 but the last, whose move to pod 1 was
    # handed over and its answer lost (pod 1 has not dropped pod 2's copy yet).
    for shard in range(2, 64, 3):
        pods.move(shard, 0)
    pods.move(5, 1)
    pods.unfinished[1] = (5, 2)
    pods.refuse = "not now"  # and pod 1 is not done yet
    api.edit(GRAPHS, NS, "chat-memory", {"spec": {"replicas": 2}})
    await _reconcile(memo)
    assert pods.spread()[2] == 0  # pod 2 owns nothing, by every pod's account
    assert (len(_map(api)["members"]), _replicas(api)) == (3, 3)
    assert (
        "pod 1 has not finished taking shard 5 from it"
        in (_conditions(api)["Rebalancing"]["message"])
        or json.loads(_cm(api)["move.json"])["source"] == 2
    )
    # Finished, it still has writes to deliver to the others: it stays.
    pods.refuse = None
    pods.undelivered[2] = 3
    over = {**json.loads(_cm(api)["move.json"]), "retry_at": 0}
    api.edit(CONFIGMAPS, NS, "chat-memory-shards", {"data": {"move.json": json.dumps(over)}})
    await _reconcile(memo)
    assert pods.unfinished == {}
    assert (len(_map(api)["members"]), _replicas(api)) == (3, 3)
    assert (
        "pod 2 has 3 parts of writes still to deliver"
        in (_conditions(api)["Rebalancing"]["message"])
    )
    pods.undelivered[2] = 0
    await _reconcile(memo)
    assert (len(_map(api)["members"]), _replicas(api)) == (2, 2)
    assert _conditions(api)["Rebalancing"]["reason"] == "Balanced"


async def test_scaled_to_zero_the_volumes_stay_and_the_move_under_way_is_kept(
    api: ApiServer, memo: kopf.Memo
) -> None:
    storage = {"size": "1Gi", "deletionPolicy": "Delete"}
    _graph(api, {"replicas": 1, "storage": storage})
    await _reconcile(memo)
    pods = PodsDouble([0] * 64, 1, key=_peer_key(api))
    memo.peers = pods
    api.edit(GRAPHS, NS, "chat-memory", {"spec": {"replicas": 2}})
    await _reconcile(memo)
    pods.members = pods.running = 2
    pods.refuse = "not now"
    await _reconcile(memo)
    assert "move.json" in _cm(api)
    api.edit(GRAPHS, NS, "chat-memory", {"spec": {"replicas": 0}})
    await _reconcile(memo)
    sts = api.read("apps/v1/statefulsets", NS, "chat-memory")
    assert sts is not None and sts["spec"]["replicas"] == 0
    policy = sts["spec"]["persistentVolumeClaimRetentionPolicy"]
    assert policy == {"whenDeleted": "Delete", "whenScaled": "Retain"}
    assert "move.json" in _cm(api) and len(_map(api)["members"]) == 2
    api.edit(GRAPHS, NS, "chat-memory", {"spec": {"replicas": 2}})
    pods.refuse = None
    over = {**json.loads(_cm(api)["move.json"]), "retry_at": 0}  # its pause is over
    api.edit(CONFIGMAPS, NS, "chat-memory-shards", {"data": {"move.json": json.dumps(over)}})
    await _reconcile(memo)
    sts = api.read("apps/v1/statefulsets", NS, "chat-memory")
    assert sts is not None
    assert sts["spec"]["persistentVolumeClaimRetentionPolicy"]["whenScaled"] == "Delete"
    assert pods.spread() == [32, 32]


async def test_a_move_a_pod_left_unfinished_is_finished_before_any_other(
    api: ApiServer, memo: kopf.Memo
) -> None:
    pods = await _scaled_out_to_two(api, memo)
    # An earlier operator asked pod 1 for shard 5 and never heard back (nor recorded it); the
    # pod took it, and keeps its record of the move until asked for that shard again.
    pods.move(5, 1)
    pods.unfinished[1] = (5, 0)
    await _reconcile(memo)
    takes = [a for a in pods.asked if a.startswith("take")]
    assert takes[0] == "take 5 1"
    assert pods.unfinished == {} and sorted(pods.spread()) == [32, 32]
    assert _map(api)["owners"] == pods.owners


async def test_a_requeued_reconcile_that_fails_is_asked_for_again(
    api: ApiServer, memo: kopf.Memo, monkeypatch: pytest.MonkeyPatch
) -> None:
    pods = await _scaled_out_to_two(api, memo, shards=8)
    monkeypatch.setattr(moves, "BUDGET_SECONDS", 0.0)  # one move per reconcile
    monkeypatch.setattr(handlers, "RETRY_AFTER_FAILURE", 0.05)
    api.reject["configmaps"] = "the API server is having a bad day"
    await _reconcile(memo)  # the move is not asked for: its record could not be written
    assert pods.spread() == [8, 0]
    assert "could not be written" in _conditions(api)["Rebalancing"]["message"]
    del api.reject["configmaps"]
    memo.again.pop((NS, "chat-memory"))[1].cancel()
    handlers._again(memo, (NS, "chat-memory"), 0.0, log)
    for _ in range(500):
        if pods.spread() == [4, 4]:
            break
        await asyncio.sleep(0.02)
    assert pods.spread() == [4, 4]


async def test_a_failing_move_is_reported_retried_with_a_pause_and_finished_after_a_restart(
    api: ApiServer, memo: kopf.Memo
) -> None:
    pods = await _scaled_out_to_two(api, memo)
    pods.refuse = "the move of shard 9 to this member is unfinished"
    stuck = REGISTRY.get_sample_value("memorygraph_operator_shard_moves_stuck") or 0.0
    pauses = []
    for attempt in (1, 2, 3):
        await _reconcile(memo)
        move = json.loads(_cm(api)["move.json"])
        assert (move["shard"], move["source"], move["target"]) == (63, 0, 1)
        assert move["attempts"] == attempt and "unfinished" in move["error"]
        due, _ = memo.again[(NS, "chat-memory")]
        pauses.append(due - asyncio.get_running_loop().time())
        memo.again.pop((NS, "chat-memory"))[1].cancel()
        # Reconciled again before the pause is over (a pod's event, a resync): not asked.
        takes = pods.asked.count("take 63 1")
        await _reconcile(memo)
        assert pods.asked.count("take 63 1") == takes
        assert json.loads(_cm(api)["move.json"])["attempts"] == attempt
        memo.again.pop((NS, "chat-memory"))[1].cancel()
        # The pause over (as if the time had come):
        over = {**json.loads(_cm(api)["move.json"]), "retry_at": 0}
        api.edit(CONFIGMAPS, NS, "chat-memory-shards", {"data": {"move.json": json.dumps(over)}})
    assert 4 < pauses[0] < pauses[1] < pauses[2]  # a growing pause between attempts
    rebalancing = _conditions(api)["Rebalancing"]
    assert (rebalancing["status"], rebalancing["reason"]) == ("True", "MoveStuck")
    assert "failed 3 times" in rebalancing["message"]
    assert ("Warning", "MoveStuck") in _events(api)
    assert REGISTRY.get_sample_value("memorygraph_operator_shard_moves_stuck") == stuck + 1
    assert _status(api)["shards"]["moving"] == "shard 63 from pod 0 to pod 1"

    # An operator restarted meanwhile: its memo is new, the move is read from the map's
    # ConfigMap. The pods finished it (an answer lost): it is recorded, not asked again.
    memo.stuck.clear()
    pods.refuse = None
    pods.move(63, 1)
    asked = pods.asked.count("take 63 1")
    await _reconcile(memo)
    assert pods.asked.count("take 63 1") == asked
    assert _map(api)["owners"][63] == 1
    assert sorted(pods.spread()) == [32, 32]
    assert "move.json" not in _cm(api)
    assert "moving" not in _status(api)["shards"]
    assert _conditions(api)["Rebalancing"]["reason"] == "Balanced"


async def test_a_long_rebalance_goes_on_in_later_reconciles(
    api: ApiServer, memo: kopf.Memo, monkeypatch: pytest.MonkeyPatch
) -> None:
    pods = await _scaled_out_to_two(api, memo, shards=8)
    monkeypatch.setattr(moves, "BUDGET_SECONDS", 0.0)  # one move per reconcile
    await _reconcile(memo)
    assert pods.spread() == [7, 1]
    assert _conditions(api)["Rebalancing"]["reason"] == "MovingShards"
    # The reconciles asked for later go on until the spread is even.
    for _ in range(500):
        if pods.spread() == [4, 4]:
            break
        await asyncio.sleep(0.02)
    assert pods.spread() == [4, 4]
    for _ in range(50):
        if _conditions(api)["Rebalancing"]["reason"] == "Balanced":
            break
        await asyncio.sleep(0.02)
    assert _map(api)["owners"] == pods.owners
