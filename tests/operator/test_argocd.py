"""The Argo CD health check and actions, run with a real Lua interpreter on status fixtures."""

from __future__ import annotations

from typing import Any

import lupa
import pytest
import yaml
from memorygraph_operator.reconcile.inputs import is_paused
from operator_support import ROOT

ARGOCD = ROOT / "docs" / "argocd"


def _to_lua(lua: lupa.LuaRuntime, value: Any) -> Any:
    if isinstance(value, dict):
        return lua.table_from({k: _to_lua(lua, v) for k, v in value.items()})
    if isinstance(value, list):
        return lua.table_from([_to_lua(lua, v) for v in value])
    return value


def _from_lua(value: Any) -> Any:
    if lupa.lua_type(value) == "table":
        keys = list(value.keys())
        if keys and all(isinstance(k, int) for k in keys):
            return [_from_lua(value[k]) for k in sorted(keys)]
        return {k: _from_lua(v) for k, v in value.items()}
    return value


def run_lua(script: str, obj: dict[str, Any]) -> Any:
    """Run an Argo CD Lua script the way Argo CD does: ``obj`` global, returned table."""
    lua = lupa.LuaRuntime(unpack_returned_tuples=True)
    lua.globals().obj = _to_lua(lua, obj)
    return _from_lua(lua.execute((ARGOCD / script).read_text()))


def _graph(
    generation: int = 3,
    observed: int | None = 3,
    annotations: dict[str, str] | None = None,
    **conditions: tuple[str, str],
) -> dict[str, Any]:
    obj: dict[str, Any] = {"metadata": {"name": "g", "generation": generation}}
    if annotations:
        obj["metadata"]["annotations"] = annotations
    if observed is not None:
        obj["status"] = {
            "observedGeneration": observed,
            "conditions": [
                {"type": t, "status": s, "reason": r, "message": f"{t} says {r}"}
                for t, (s, r) in conditions.items()
            ],
        }
    return obj


@pytest.mark.parametrize(
    ("obj", "expected"),
    [
        (_graph(observed=None), "Progressing"),
        (_graph(Ready=("True", "Ready"), Degraded=("False", "AsExpected")), "Healthy"),
        (_graph(observed=2, Ready=("True", "Ready")), "Progressing"),
        (
            _graph(Ready=("False", "RolloutInProgress"), Progressing=("True", "RolloutInProgress")),
            "Progressing",
        ),
        (_graph(Ready=("False", "ChildConflict"), Degraded=("True", "ChildConflict")), "Degraded"),
        (_graph(Ready=("False", "InvalidSpec"), Degraded=("True", "InvalidSpec")), "Degraded"),
        (_graph(Ready=("True", "Ready"), Paused=("True", "PauseAnnotation")), "Suspended"),
        (_graph(observed=1, annotations={"memorygraph.io/paused": "true"}), "Suspended"),
        (_graph(observed=1, annotations={"memorygraph.io/paused": "Yes"}), "Suspended"),
        (
            _graph(Ready=("True", "Ready"), annotations={"memorygraph.io/paused": "false"}),
            "Healthy",
        ),
        (
            _graph(
                Ready=("True", "Ready"),
                Progressing=("True", "Rebalancing"),
                Rebalancing=("True", "MovingShards"),
            ),
            "Progressing",
        ),
        (
            _graph(
                Ready=("True", "Ready"),
                Degraded=("False", "AsExpected"),
                Rebalancing=("True", "MoveStuck"),
            ),
            "Degraded",
        ),
        (_graph(Ready=("True", "Ready"), Rebalancing=("False", "Balanced")), "Healthy"),
    ],
    ids=[
        "no-status",
        "ready",
        "stale-generation",
        "rolling-out",
        "degraded",
        "invalid-spec",
        "paused-condition",
        "paused-annotation",
        "paused-annotation-as-the-operator-reads-it",
        "not-paused",
        "rebalancing",
        "move-stuck",
        "balanced",
    ],
)
def test_memorygraph_health(obj: dict[str, Any], expected: str) -> None:
    health = run_lua("health.lua", obj)
    assert health["status"] == expected
    assert health["message"]


def test_degraded_health_carries_the_operator_message() -> None:
    health = run_lua(
        "health.lua", _graph(Ready=("False", "MissingPlugins"), Degraded=("True", "MissingPlugins"))
    )
    assert health["message"] == "Degraded says MissingPlugins"


@pytest.mark.parametrize(("status", "expected"), [("True", "Healthy"), ("False", "Degraded")])
def test_plugin_health(status: str, expected: str) -> None:
    obj = _graph(Ready=(status, "Valid" if status == "True" else "InvalidSpec"))
    assert run_lua("plugin-health.lua", obj)["status"] == expected


def test_actions_pause_resume_and_restart_edit_the_annotations() -> None:
    obj = _graph()
    assert run_lua("actions/discovery.lua", obj) == {
        "restart": {"disabled": False},
        "pause": {"disabled": False},
        "resume": {"disabled": True},
    }
    paused = run_lua("actions/pause.lua", obj)
    assert paused["metadata"]["annotations"] == {"memorygraph.io/paused": "true"}
    assert run_lua("actions/discovery.lua", paused)["resume"] == {"disabled": False}
    resumed = run_lua("actions/resume.lua", paused)
    assert resumed["metadata"].get("annotations", {}) == {}
    restarted = run_lua("actions/restart.lua", obj)
    stamp = restarted["metadata"]["annotations"]["memorygraph.io/restartedAt"]
    assert len(stamp) == 20 and stamp.endswith("Z")


def test_argocd_cm_example_embeds_the_tested_scripts_verbatim() -> None:
    cm = yaml.safe_load((ARGOCD / "argocd-cm.yaml").read_text())
    data = cm["data"]
    assert (
        data["resource.customizations.health.memorygraph.io_MemoryGraph"]
        == (ARGOCD / "health.lua").read_text()
    )
    assert (
        data["resource.customizations.health.memorygraph.io_Plugin"]
        == (ARGOCD / "plugin-health.lua").read_text()
    )
    actions = yaml.safe_load(data["resource.customizations.actions.memorygraph.io_MemoryGraph"])
    assert actions["discovery.lua"] == (ARGOCD / "actions/discovery.lua").read_text()
    for action in actions["definitions"]:
        assert action["action.lua"] == (ARGOCD / f"actions/{action['name']}.lua").read_text()


@pytest.mark.parametrize("value", ["true", "True", "1", "yes", "false", "0", "", "no"])
def test_argocd_reads_the_pause_annotation_as_the_operator_does(value: str) -> None:
    obj = _graph(annotations={"memorygraph.io/paused": value}, Ready=("True", "Ready"))
    paused = is_paused(obj["metadata"])
    assert (run_lua("health.lua", obj)["status"] == "Suspended") == paused
    assert run_lua("actions/discovery.lua", obj)["resume"] == {"disabled": not paused}
