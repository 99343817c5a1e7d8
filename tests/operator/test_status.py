"""Status computed from observed children: conditions, transition times, curated events, and
the shape every status takes on the wire (the CRD's status schema, which the model generates)."""

from __future__ import annotations

from typing import Any

import jsonschema
import pytest
from memorygraph_operator.api.conditions import ConditionType, EventReason, Reason
from memorygraph_operator.api.crdgen import KINDS, build_crd
from memorygraph_operator.reconcile.plugins import plugin_status
from memorygraph_operator.reconcile.status import (
    ConditionSpec,
    Observation,
    graph_status,
    invalid_spec_status,
    paused_status,
    transition_events,
)
from memorygraph_operator.render.context import PendingMove, ShardMap
from operator_support import ROOT

T0 = "2026-01-01T00:00:00Z"
T1 = "2026-01-01T00:05:00Z"


def _sts(
    ready: int, want: int = 3, gen: int = 2, observed: int = 2, rev: str = "b"
) -> dict[str, Any]:
    return {
        "metadata": {"generation": gen},
        "spec": {"replicas": want, "template": {"spec": {"containers": [{"image": "img:2"}]}}},
        "status": {
            "observedGeneration": observed,
            "replicas": want,
            "readyReplicas": ready,
            "updatedReplicas": want if rev == "b" else 1,
            "currentRevision": rev,
            "updateRevision": "b",
        },
    }


def _obs(sts: dict[str, Any] | None, **kw: Any) -> Observation:
    base: dict[str, Any] = dict(
        name="g",
        namespace="ns",
        generation=5,
        statefulset=sts,
        desired_replicas=3,
        autoscaled=False,
        selector="a=b",
        config_hash="h",
    )
    base.update(kw)
    return Observation(**base)


def _conds(status: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {c["type"]: c for c in status["conditions"]}


def test_ready_only_when_every_desired_pod_is_updated_and_ready() -> None:
    assert _conds(graph_status(_obs(_sts(ready=3)), T0))["Ready"]["status"] == "True"
    assert _conds(graph_status(_obs(_sts(ready=2)), T0))["Ready"]["status"] == "False"
    rolling = _conds(graph_status(_obs(_sts(ready=3, rev="a")), T0))
    assert rolling["Ready"]["status"] == "False" and rolling["Progressing"]["status"] == "True"
    stale = _conds(graph_status(_obs(_sts(ready=3, observed=1)), T0))
    assert stale["Ready"]["reason"] == "RolloutInProgress"


def test_missing_statefulset_is_progressing_not_available() -> None:
    conds = _conds(graph_status(_obs(None), T0))
    assert conds["Available"]["status"] == "False"
    assert conds["Progressing"]["status"] == "True"


def test_autoscaled_graphs_count_against_the_hpa_chosen_replicas() -> None:
    status = graph_status(_obs(_sts(ready=3), desired_replicas=None, autoscaled=True), T0)
    assert _conds(status)["Ready"]["status"] == "True"


def test_problems_degrade_and_unready_the_graph_with_the_first_reason() -> None:
    problems = (("MissingPlugins", "plugins not found: x"), ("ChildConflict", "y"))
    conds = _conds(graph_status(_obs(_sts(ready=3), problems=problems), T0))
    assert conds["Degraded"]["reason"] == "MissingPlugins"
    assert conds["Degraded"]["message"] == "plugins not found: x; y"
    assert conds["Ready"]["status"] == "False"


def test_transition_time_moves_only_when_status_changes() -> None:
    first = graph_status(_obs(_sts(ready=3)), T0)
    same = graph_status(_obs(_sts(ready=3), previous=first), T1)
    assert _conds(same)["Ready"]["lastTransitionTime"] == T0
    changed = graph_status(_obs(_sts(ready=1), previous=first), T1)
    assert _conds(changed)["Ready"]["lastTransitionTime"] == T1


def test_current_image_is_reported_only_after_the_rollout() -> None:
    done = graph_status(_obs(_sts(ready=3)), T0)
    assert done["currentImage"] == "img:2"
    rolling = graph_status(_obs(_sts(ready=3, rev="a"), previous={"currentImage": "img:1"}), T0)
    assert rolling["currentImage"] == "img:1"


def test_paused_status_keeps_other_conditions_and_generation() -> None:
    ready = graph_status(_obs(_sts(ready=3)), T0)
    paused = paused_status(ready, 6, T1)
    conds = _conds(paused)
    assert conds["Paused"]["status"] == "True"
    assert conds["Ready"] == _conds(ready)["Ready"]
    assert "observedGeneration" not in paused


def test_invalid_spec_status_records_the_generation_and_message() -> None:
    status = invalid_spec_status(None, 7, "replicas: bad", T0)
    assert status["observedGeneration"] == 7
    assert _conds(status)["Ready"]["message"] == "replicas: bad"


def test_events_only_on_transitions() -> None:
    before = graph_status(_obs(_sts(ready=1)), T0)["conditions"]
    after = graph_status(_obs(_sts(ready=3)), T1)["conditions"]
    assert transition_events(before, after) == [("Normal", "Ready", "3 of 3 pods ready")]
    assert transition_events(after, after) == []
    degraded = graph_status(_obs(_sts(ready=3), problems=(("ChildConflict", "x"),)), T1)
    assert ("Warning", "ChildConflict", "x") in transition_events(after, degraded["conditions"])


@pytest.mark.parametrize(
    "word", [*ConditionType, *Reason, *EventReason], ids=lambda w: f"{type(w).__name__}.{w.name}"
)
def test_every_condition_type_and_reason_is_documented(word: str) -> None:
    # Users alert on and wait for these; one the docs do not list is one nobody can rely on.
    assert f"`{word}`" in (ROOT / "docs" / "operator.md").read_text()


def _status_schema(kind: str) -> dict[str, Any]:
    crd = build_crd(next(k for k in KINDS if k.kind == kind))
    schema = crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["status"]
    assert isinstance(schema, dict)
    return schema


def _compare(value: Any, schema: dict[str, Any], path: str = "status") -> tuple[list[str], ...]:
    """What the API server's structural pruning would silently drop from ``value``, and what the
    schema declares that ``value`` leaves out (in lists: of every item)."""
    if isinstance(value, list):
        items = schema.get("items", {})
        both = [_compare(v, items, f"{path}[{i}]") for i, v in enumerate(value)]
        return [p for d, _ in both for p in d], [p for _, m in both for p in m]
    if not isinstance(value, dict) or schema.get("x-kubernetes-preserve-unknown-fields"):
        return [], []
    props = schema.get("properties", {})
    dropped = [f"{path}.{k}" for k in value if k not in props]
    missing = [f"{path}.{k}" for k in props if k not in value]
    for k, v in value.items():
        if k in props:
            d, m = _compare(v, props[k], f"{path}.{k}")
            dropped, missing = dropped + d, missing + m
    return dropped, missing


def _full_graph_status() -> dict[str, Any]:
    """A graph with every status field known: rolled out, archiving, with plugins, moving a
    shard between its pods."""
    cron = {"status": {"lastScheduleTime": T0, "lastSuccessfulTime": T0}}
    shard_map = ShardMap(4, (0, 1, 2, 0), 3, (0, 1, 1, 0))
    moving = ConditionSpec(ConditionType.REBALANCING, "True", Reason.MOVING_SHARDS, "moving")
    obs = _obs(
        _sts(ready=3),
        plugins=("pii",),
        cronjob=cron,
        shard_map=shard_map,
        move=PendingMove(0, 0, 2, 0),
        rebalancing=moving,
    )
    return graph_status(obs, T0)


def test_a_graph_moving_shards_is_ready_progressing_and_reports_its_spread() -> None:
    status = _full_graph_status()
    conditions = _conds(status)
    assert conditions["Ready"]["status"] == "True"  # every shard is served meanwhile
    assert (conditions["Progressing"]["status"], conditions["Progressing"]["reason"]) == (
        "True",
        "Rebalancing",
    )
    assert conditions["Rebalancing"]["reason"] == "MovingShards"
    assert status["shards"] == {
        "count": 4,
        "epoch": 4,
        "perPod": [2, 1, 1],
        "spread": "2/1/1",
        "moves": 2,
        "moving": "shard 0 from pod 0 to pod 2",
    }
    # Once done, the move is removed from the status (a merge patch keeps what it leaves out).
    balanced = ConditionSpec(ConditionType.REBALANCING, "False", Reason.BALANCED, "")
    done = graph_status(
        _obs(
            _sts(ready=3),
            shard_map=ShardMap(5, (2, 1, 2, 0), 3, (1, 1, 1, 0)),
            rebalancing=balanced,
            previous=status,
        ),
        T1,
    )
    assert done["shards"]["moving"] is None and done["shards"]["spread"] == "1/1/2"
    events = transition_events(status["conditions"], done["conditions"])
    assert ("Normal", "Balanced", "Balanced") in events
    stuck = ConditionSpec(ConditionType.REBALANCING, "True", Reason.MOVE_STUCK, "failed 3 times")
    again = graph_status(_obs(_sts(ready=3), rebalancing=stuck, previous=status), T1)
    assert ("Warning", "MoveStuck", "failed 3 times") in transition_events(
        status["conditions"], again["conditions"]
    )


def _plugin(status: dict[str, Any] | None = None) -> dict[str, Any]:
    return {"metadata": {"name": "p", "namespace": "ns", "generation": 2}, "status": status}


STATUSES = {
    "graph-reconciled": ("MemoryGraph", _full_graph_status),
    "graph-degraded": (
        "MemoryGraph",
        lambda: graph_status(_obs(_sts(ready=1), problems=((Reason.APPLY_FAILED, "no"),)), T0),
    ),
    "graph-invalid": ("MemoryGraph", lambda: invalid_spec_status(_full_graph_status(), 6, "x", T1)),
    "graph-paused": ("MemoryGraph", lambda: paused_status(_full_graph_status(), 6, T1)),
    "plugin-valid": ("Plugin", lambda: plugin_status(_plugin(), ["g"], None, T0)),
    "plugin-invalid": (
        "Plugin",
        lambda: plugin_status(_plugin(plugin_status(_plugin(), [], None, T0)), [], "bad", T1),
    ),
}


@pytest.mark.parametrize("case", list(STATUSES))
def test_every_status_written_is_what_the_crd_declares(case: str) -> None:
    # Statuses are built through the status models that generate the CRD: a field renamed on
    # one side only would be pruned by the API server without a word, so it must fail here.
    kind, build = STATUSES[case]
    status, schema = build(), _status_schema(kind)
    assert _compare(status, schema)[0] == []
    jsonschema.Draft4Validator(schema).validate(status)


@pytest.mark.parametrize(
    ("kind", "build"),
    [("MemoryGraph", _full_graph_status), STATUSES["plugin-valid"]],
    ids=["MemoryGraph", "Plugin"],
)
def test_a_reconciled_resource_reports_every_status_field_the_crd_declares(
    kind: str, build: Any
) -> None:
    assert _compare(build(), _status_schema(kind))[1] == []
