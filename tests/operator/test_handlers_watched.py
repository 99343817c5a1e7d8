"""Reconciles that read children and Plugins from the watches, as the running operator does.

A graph whose children are as the operator applied them costs no request for them; drift is
still repaired; the echo of the operator's own apply reconciles nothing; a burst of child
events costs one reconcile; a stale Plugin never undoes another graph's update.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator, Mapping
from typing import Any

import kopf
import pytest
from apiserver import ApiServer
from handler_support import NS, STS, _graph, _reconcile, log
from memorygraph_operator.api.base import GROUP
from memorygraph_operator.errors import Unavailable
from memorygraph_operator.handlers import (
    on_child,
    on_graph_event,
    reconcile_graph_by_name,
    resync_all,
)
from memorygraph_operator.kube import FIELD_MANAGER, Credentials, Kube, resource_for
from memorygraph_operator.reconcile import reads
from memorygraph_operator.reconcile.observed import Observed, observe
from memorygraph_operator.reconcile.reads import ClusterReads
from operator_support import GRAPHS, PLUGINS, load_example

pytestmark = pytest.mark.asyncio

CHILD_KINDS = (
    "ConfigMap",
    "Service",
    "StatefulSet",
    "HorizontalPodAutoscaler",
    "PodDisruptionBudget",
    "CronJob",
    "NetworkPolicy",
    "ServiceMonitor",
)
NETPOL = "networking.k8s.io/v1/networkpolicies"
CONFIGMAP = "v1/configmaps"


class LiveIndex(Mapping[tuple[str, str], list[Observed]]):
    """A kind's children as a watch that is never behind would hold them."""

    def __init__(self, api: ApiServer, kind: str) -> None:
        self.api, self.kind = api, kind

    def _objects(self) -> dict[tuple[str, str], list[Observed]]:
        return {
            (obj.raw["metadata"]["namespace"], obj.raw["metadata"]["name"]): [
                observe(obj.raw, FIELD_MANAGER)
            ]
            for obj in self.api.objects.values()
            if not obj.deleted and obj.raw.get("kind") == self.kind
        }

    def __getitem__(self, key: tuple[str, str]) -> list[Observed]:
        return self._objects()[key]

    def __iter__(self) -> Iterator[tuple[str, str]]:
        return iter(self._objects())

    def __len__(self) -> int:
        return len(self._objects())


def _plugins_now(api: ApiServer) -> dict[str, list[dict[str, Any]]]:
    out: dict[str, list[dict[str, Any]]] = {}
    for obj in api.objects.values():
        if not obj.deleted and obj.raw.get("kind") == "Plugin":
            out.setdefault(obj.raw["metadata"]["namespace"], []).append(dict(obj.raw))
    return out


def _watch(api: ApiServer, reads: ClusterReads, plugins: Any = None) -> ClusterReads:
    children = {kind: LiveIndex(api, kind) for kind in CHILD_KINDS}
    reads.use_watches(children, plugins if plugins is not None else _plugins_now(api), 60.0)
    return reads


@pytest.fixture
def watched(api: ApiServer, memo: kopf.Memo) -> kopf.Memo:
    """The memo, reading children from (never lagging) watches."""
    _watch(api, memo.reads)
    return memo


def _writes(api: ApiServer) -> list[tuple[str, str, str | None, str]]:
    return [w for w in api.writes if w[1] != "events"]


async def test_an_unchanged_graph_reads_only_itself_and_applies_nothing(
    api: ApiServer, watched: kopf.Memo
) -> None:
    _graph(api, {"replicas": 2})
    await _reconcile(watched)
    applied = {w[1] for w in _writes(api) if w[0] == "apply"}
    assert {"statefulsets", "configmaps", "services", "networkpolicies"} <= applied
    api.calls.clear()
    api.writes.clear()

    await _reconcile(watched)
    await _reconcile(watched)

    assert _writes(api) == []
    # The graph, and its generated Secrets once each (then known to exist for a while).
    assert set(api.calls) <= {("get", GROUP, "memorygraphs"), ("get", "", "secrets")}
    assert api.calls.count(("get", "", "secrets")) <= 2
    api.calls.clear()
    await _reconcile(watched)
    assert api.calls == [("get", GROUP, "memorygraphs")]


async def test_a_generated_secret_deleted_by_hand_is_made_again_once_rechecked(
    api: ApiServer, watched: kopf.Memo, monkeypatch: pytest.MonkeyPatch
) -> None:
    _graph(api, {"replicas": 2})
    await _reconcile(watched)
    await _reconcile(watched)  # both Secrets now known to exist
    api.objects[("v1/secrets", NS, "chat-memory-peer")].delete()
    await _reconcile(watched)
    assert api.read("v1/secrets", NS, "chat-memory-peer") is None  # not read again yet
    monkeypatch.setattr(reads, "SECRET_RECHECK_SECONDS", 0.0)
    await _reconcile(watched)
    assert api.read("v1/secrets", NS, "chat-memory-peer") is not None


async def test_a_generated_secret_no_longer_used_is_read_again_once_used(
    api: ApiServer, watched: kopf.Memo
) -> None:
    _graph(api)
    await _reconcile(watched)
    await _reconcile(watched)  # the API-key Secret now known to exist
    api.edit(GRAPHS, NS, "chat-memory", {"spec": {"auth": {"enabled": False}}})
    await _reconcile(watched)
    api.objects[("v1/secrets", NS, "chat-memory-api-keys")].delete()  # cleaned up by hand
    api.edit(GRAPHS, NS, "chat-memory", {"spec": {"auth": {"enabled": True}}})
    await _reconcile(watched)
    assert api.read("v1/secrets", NS, "chat-memory-api-keys") is not None


async def test_an_operator_restarted_applies_each_child_once_and_changes_nothing(
    api: ApiServer, watched: kopf.Memo
) -> None:
    _graph(api)
    await _reconcile(watched)
    api.writes.clear()
    # A new process: it has not seen which fields its applies own, so it applies each child
    # once (to notice a field removed by hand); unchanged, they stay as they are.
    watched.reads = _watch(api, ClusterReads(watched.kube))
    api.calls.clear()
    await _reconcile(watched)
    assert ("patch", "apps", "statefulsets") in api.calls
    assert _writes(api) == []
    api.calls.clear()
    await _reconcile(watched)
    assert not [c for c in api.calls if c[0] == "patch" and c[2] != "memorygraphs/status"]


async def test_a_changed_spec_applies_only_the_children_it_changes(
    api: ApiServer, watched: kopf.Memo
) -> None:
    _graph(api, {"replicas": 2})
    await _reconcile(watched)
    api.writes.clear()
    api.edit(GRAPHS, NS, "chat-memory", {"spec": {"replicas": 3}})
    await _reconcile(watched)
    assert ("apply", "statefulsets", NS, "chat-memory") in _writes(api)
    assert ("apply", "configmaps", NS, "chat-memory-config") not in _writes(api)
    sts = api.read(STS, NS, "chat-memory")
    assert sts is not None and sts["spec"]["replicas"] == 3


@pytest.mark.parametrize("restarted", [False, True], ids=["same-process", "restarted"])
async def test_a_value_edited_by_hand_is_set_back(
    api: ApiServer, watched: kopf.Memo, restarted: bool
) -> None:
    _graph(api)
    await _reconcile(watched)
    image = api.read(STS, NS, "chat-memory")["spec"]["template"]["spec"]["containers"][0]["image"]  # type: ignore[index]
    api.edit(
        STS,
        NS,
        "chat-memory",
        {"spec": {"template": {"spec": {"containers": [{"name": "x", "image": "evil:1"}]}}}},
    )
    api.edit(CONFIGMAP, NS, "chat-memory-config", {"data": {"memorygraph.yaml": "port: 1\n"}})
    api.edit(STS, NS, "chat-memory", {"spec": {"replicas": 5}}, manager="kubectl")
    if restarted:
        watched.reads = _watch(api, ClusterReads(watched.kube))
    await _reconcile(watched)

    sts = api.read(STS, NS, "chat-memory")
    assert sts is not None
    assert sts["spec"]["template"]["spec"]["containers"][0]["image"] == image
    assert sts["spec"]["replicas"] == 1
    config = api.read(CONFIGMAP, NS, "chat-memory-config")
    assert config is not None and "durability: durable" in config["data"]["memorygraph.yaml"]


@pytest.mark.parametrize("restarted", [False, True], ids=["same-process", "restarted"])
async def test_a_field_removed_by_hand_is_put_back(
    api: ApiServer, watched: kopf.Memo, restarted: bool
) -> None:
    _graph(api)
    await _reconcile(watched)
    if restarted:
        watched.reads = _watch(api, ClusterReads(watched.kube))
        await _reconcile(watched)
    api.edit(NETPOL, NS, "chat-memory", {"spec": {"ingress": None}})
    await _reconcile(watched)
    policy = api.read(NETPOL, NS, "chat-memory")
    assert policy is not None and len(policy["spec"]["ingress"]) == 2  # gRPC and peers


async def test_a_child_deleted_by_hand_comes_back(api: ApiServer, watched: kopf.Memo) -> None:
    _graph(api)
    await _reconcile(watched)
    await watched.kube.delete(resource_for("v1", "ConfigMap"), NS, "chat-memory-config")
    await _reconcile(watched)
    assert api.read(CONFIGMAP, NS, "chat-memory-config") is not None


async def test_the_echo_of_the_operators_own_apply_reconciles_nothing(
    api: ApiServer, watched: kopf.Memo
) -> None:
    _graph(api)
    await _reconcile(watched)
    api.calls.clear()
    config = api.read(CONFIGMAP, NS, "chat-memory-config")
    await on_child(type="MODIFIED", body=config, namespace=NS, memo=watched, logger=log)
    assert api.calls == []

    # The StatefulSet's status is the graph's: its events always reconcile.
    await on_child(
        type="MODIFIED",
        body=api.read(STS, NS, "chat-memory"),
        namespace=NS,
        memo=watched,
        logger=log,
    )
    assert ("get", GROUP, "memorygraphs") in api.calls

    # A ConfigMap someone edited is not an echo.
    api.edit(CONFIGMAP, NS, "chat-memory-config", {"data": {"memorygraph.yaml": "port: 1\n"}})
    edited = api.read(CONFIGMAP, NS, "chat-memory-config")
    await on_child(type="MODIFIED", body=edited, namespace=NS, memo=watched, logger=log)
    config = api.read(CONFIGMAP, NS, "chat-memory-config")
    assert config is not None and config["data"]["memorygraph.yaml"] != "port: 1\n"


async def test_child_events_during_a_reconcile_join_one_waiting_reconcile(
    api: ApiServer, watched: kopf.Memo
) -> None:
    _graph(api)
    await _reconcile(watched)
    sts = api.read(STS, NS, "chat-memory")
    lock = watched.locks[(NS, "chat-memory")]
    api.calls.clear()
    async with lock:  # a reconcile is running
        events = [
            asyncio.create_task(
                on_child(type="MODIFIED", body=sts, namespace=NS, memo=watched, logger=log)
            )
            for _ in range(5)
        ]
        await asyncio.sleep(0.05)
        assert sum(1 for t in events if t.done()) == 4  # joined the one waiting
    await asyncio.gather(*events)
    assert api.calls.count(("get", GROUP, "memorygraphs")) == 1
    # The next event, after that reconcile started, gets a reconcile of its own.
    await on_child(type="MODIFIED", body=sts, namespace=NS, memo=watched, logger=log)
    assert api.calls.count(("get", GROUP, "memorygraphs")) == 2
    assert watched.queued == {}


async def test_a_cancelled_waiting_reconcile_leaves_no_trace(
    api: ApiServer, watched: kopf.Memo
) -> None:
    _graph(api)
    await _reconcile(watched)
    lock = watched.locks[(NS, "chat-memory")]
    async with lock:
        waiting = asyncio.create_task(
            reconcile_graph_by_name(watched, NS, "chat-memory", log, join=True)
        )
        await asyncio.sleep(0.05)
        assert (NS, "chat-memory") in watched.queued
        waiting.cancel()
        await asyncio.gather(waiting, return_exceptions=True)
    assert watched.queued == {}


async def test_a_plugin_seen_stale_is_never_overwritten(api: ApiServer, watched: kopf.Memo) -> None:
    plugin = load_example("plugin-pii-redactor.yaml")
    plugin["metadata"]["namespace"] = NS
    api.store(PLUGINS, plugin)
    name = plugin["metadata"]["name"]
    stale = _plugins_now(api)  # what a lagging watch still shows
    # Another graph joined the plugin meanwhile.
    api.edit(PLUGINS, NS, name, {"status": {"usedBy": ["other-graph"]}})
    _watch(api, watched.reads, plugins=stale)
    _graph(api, {"plugins": {"names": [name]}})

    await _reconcile(watched)

    current = api.read(PLUGINS, NS, name)
    assert current is not None and current["status"]["usedBy"] == ["chat-memory", "other-graph"]
    assert ("list", GROUP, "plugins") in api.calls  # listed afresh after the refusal
    config = api.read(CONFIGMAP, NS, "chat-memory-config")
    assert config is not None and name in config["data"]["plugins.yaml"]


async def test_graphs_deleted_together_all_leave_the_plugin(
    api: ApiServer, watched: kopf.Memo
) -> None:
    plugin = load_example("plugin-pii-redactor.yaml")
    plugin["metadata"]["namespace"] = NS
    plugin["status"] = {"usedBy": ["g1", "g2", "g3"]}
    api.store(PLUGINS, plugin)
    stale = _plugins_now(api)
    _watch(api, watched.reads, plugins=stale)  # every deletion sees the same version
    await asyncio.gather(
        *(
            on_graph_event(type="DELETED", name=g, namespace=NS, memo=watched, logger=log)
            for g in ("g1", "g2", "g3")
        )
    )
    current = api.read(PLUGINS, NS, plugin["metadata"]["name"])
    assert current is not None and not current["status"].get("usedBy")


async def test_an_api_server_out_of_reach_is_a_temporary_error_even_for_the_graphs_read(
    api: ApiServer, memo: kopf.Memo
) -> None:
    # Port 9 (discard) on loopback: nothing listens, the connection is refused.
    memo.kube = Kube(lambda: Credentials(server="http://127.0.0.1:9", headers={}), FIELD_MANAGER)
    try:
        with pytest.raises(kopf.TemporaryError) as caught:
            await _reconcile(memo)
    finally:
        await memo.kube.close()
    assert caught.value.delay == 10


def _snapshot(api: ApiServer) -> dict[str, dict[tuple[str, str], list[Observed]]]:
    """What a watch that stopped following shows: the children as they are now, frozen."""
    return {kind: {key: list(v) for key, v in LiveIndex(api, kind).items()} for kind in CHILD_KINDS}


async def test_volumes_grow_once_even_when_the_watch_still_shows_the_old_statefulset(
    api: ApiServer, watched: kopf.Memo
) -> None:
    _graph(api, {"storage": {"size": "10Gi"}})
    await _reconcile(watched)
    before = _snapshot(api)
    api.edit(GRAPHS, NS, "chat-memory", {"spec": {"storage": {"size": "20Gi"}}})
    await _reconcile(watched)
    assert ("delete", "statefulsets", NS, "chat-memory") in api.writes
    api.writes.clear()

    # The watch has not caught up: it still shows the 10Gi StatefulSet that was recreated.
    watched.reads.use_watches(before, _plugins_now(api), 60.0)
    await _reconcile(watched)
    assert ("delete", "statefulsets", NS, "chat-memory") not in api.writes
    sts = api.read(STS, NS, "chat-memory")
    claim = sts["spec"]["volumeClaimTemplates"][0]["spec"]  # type: ignore[index]
    assert claim["resources"]["requests"]["storage"] == "20Gi"


async def test_the_live_object_counts_when_a_name_holds_two(
    api: ApiServer, memo: kopf.Memo
) -> None:
    old = observe(
        {"metadata": {"name": "n", "uid": "1", "deletionTimestamp": "2026-01-01T00:00:00Z"}},
        FIELD_MANAGER,
    )
    new = observe({"metadata": {"name": "n", "uid": "2"}}, FIELD_MANAGER)
    rt = resource_for("v1", "ConfigMap")
    for values in ([old, new], [new, old]):
        memo.reads.use_watches({"ConfigMap": {(NS, "n"): values}}, {}, 60.0)
        found = await memo.reads.child(rt, NS, "n")
        assert found is not None and found.body["metadata"]["uid"] == "2"


async def test_a_child_recreated_by_someone_else_is_not_pruned_on_the_watchs_word(
    api: ApiServer, watched: kopf.Memo
) -> None:
    _graph(api, {"networkPolicy": {"enabled": True}})
    await _reconcile(watched)
    stale = _snapshot(api)
    # Someone deletes the policy and makes their own of the same name; the watch missed both.
    await watched.kube.delete(
        resource_for("networking.k8s.io/v1", "NetworkPolicy"), NS, "chat-memory"
    )
    api.store(
        NETPOL, {"metadata": {"name": "chat-memory", "namespace": NS}, "spec": {"podSelector": {}}}
    )
    api.edit(GRAPHS, NS, "chat-memory", {"spec": {"networkPolicy": {"enabled": False}}})
    watched.reads.use_watches(stale, _plugins_now(api), 60.0)
    await _reconcile(watched)
    assert api.read(NETPOL, NS, "chat-memory") is not None


async def test_a_child_deleted_while_the_watch_was_away_is_made_again_at_the_resync(
    api: ApiServer, watched: kopf.Memo
) -> None:
    _graph(api)
    await _reconcile(watched)
    # The watch reconnected after a gap: it listed again, and the deletion in the gap never
    # reached it, so it still shows the policy.
    watched.reads.use_watches(_snapshot(api), _plugins_now(api), 60.0)
    await watched.kube.delete(
        resource_for("networking.k8s.io/v1", "NetworkPolicy"), NS, "chat-memory"
    )
    await _reconcile(watched)
    assert api.read(NETPOL, NS, "chat-memory") is None  # the watch's word, for now

    await resync_all(watched, log)
    assert api.read(NETPOL, NS, "chat-memory") is not None
    # The watch then sees the new policy (a new uid): it counts, and needs nothing.
    _watch(api, watched.reads)
    api.calls.clear()
    await resync_all(watched, log)
    assert not [c for c in api.calls if c[0] == "patch" and c[2] == "networkpolicies"]


async def test_a_child_made_while_the_names_are_listed_is_not_taken_for_gone(
    api: ApiServer, memo: kopf.Memo
) -> None:
    kept = observe({"metadata": {"name": "a", "namespace": NS, "uid": "1"}}, FIELD_MANAGER)
    deleted = observe({"metadata": {"name": "b", "namespace": NS, "uid": "2"}}, FIELD_MANAGER)
    index: dict[tuple[str, str], list[Observed]] = {(NS, "a"): [kept], (NS, "b"): [deleted]}
    memo.reads.use_watches({"ConfigMap": index}, {}, 60.0)
    before = memo.reads.entries("ConfigMap")
    # While the listing runs, c is made and its event reaches the watch.
    made = observe({"metadata": {"name": "c", "namespace": NS, "uid": "3"}}, FIELD_MANAGER)
    index[(NS, "c")] = [made]
    assert memo.reads.forget_missing("ConfigMap", before, {(NS, "a", "1")}) == 1

    rt = resource_for("v1", "ConfigMap")
    assert await memo.reads.child(rt, NS, "a") is not None
    assert await memo.reads.child(rt, NS, "b") is None
    assert await memo.reads.child(rt, NS, "c") is not None


async def test_a_listing_that_fails_does_not_stop_the_resync(
    api: ApiServer, watched: kopf.Memo, monkeypatch: pytest.MonkeyPatch
) -> None:
    _graph(api)
    await _reconcile(watched)
    api.edit(NETPOL, NS, "chat-memory", {"spec": {"ingress": None}})

    async def unavailable(*_: Any) -> set[tuple[str, str, str]]:
        raise Unavailable("list: TimeoutError()")

    monkeypatch.setattr(watched.kube, "list_names", unavailable)
    await resync_all(watched, log)
    policy = api.read(NETPOL, NS, "chat-memory")
    assert policy is not None and len(policy["spec"]["ingress"]) == 2  # gRPC and peers
