"""Status computed from observed children: conditions, transition times, curated events."""

from __future__ import annotations

from typing import Any

import pytest
from memorygraph_operator.api.conditions import ConditionType, EventReason, Reason
from memorygraph_operator.reconcile.status import (
    Observation,
    graph_status,
    invalid_spec_status,
    paused_status,
    transition_events,
)
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
