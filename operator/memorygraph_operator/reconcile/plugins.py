"""Plugin resources: validation, which graphs use them, and which graphs must re-render.

A Plugin has no children of its own. Its effect is the ``plugins.yaml`` of every graph that
selects it, so a Plugin change is turned into reconciles of those graphs by the handlers.
"""

from __future__ import annotations

import datetime
from collections.abc import Mapping
from typing import Any

from pydantic import ValidationError

from memorygraph_operator.api.conditions import ConditionType, Reason
from memorygraph_operator.api.memorygraph import MemoryGraphSpec
from memorygraph_operator.api.plugin import PluginStatus
from memorygraph_operator.errors import InvalidSpec
from memorygraph_operator.kube import Kube
from memorygraph_operator.reconcile.inputs import parse_plugin
from memorygraph_operator.reconcile.memorygraph import GRAPH
from memorygraph_operator.reconcile.status import condition, merge_conditions
from memorygraph_operator.reconcile.usage import PLUGIN

__all__ = ["graphs_selecting", "plugin_status", "reconcile_plugin"]


def _selects(graph: Mapping[str, Any], plugin: Mapping[str, Any]) -> bool:
    try:
        spec = MemoryGraphSpec.model_validate(dict(graph.get("spec") or {}))
    except ValidationError:
        return False
    if spec.plugins is None:
        return False
    meta = plugin.get("metadata") or {}
    if meta.get("name") in (spec.plugins.names or []):
        return True
    selector = spec.plugins.selector
    return selector is not None and selector.matches(dict(meta.get("labels") or {}))


def graphs_selecting(plugin: Mapping[str, Any], graphs: list[dict[str, Any]]) -> list[str]:
    """Names of the graphs (same namespace) whose selection includes ``plugin``, sorted."""
    ns = (plugin.get("metadata") or {}).get("namespace")
    return sorted(
        g["metadata"]["name"]
        for g in graphs
        if g["metadata"].get("namespace") == ns and _selects(g, plugin)
    )


def plugin_status(
    plugin: Mapping[str, Any], used_by: list[str], error: str | None, now: str
) -> dict[str, Any]:
    """Status of a Plugin: Ready (valid or not) and the graphs using it. Pure."""
    meta = plugin.get("metadata") or {}
    previous = plugin.get("status") or {}
    ready = (
        condition(ConditionType.READY, False, Reason.INVALID_SPEC, error)
        if error
        else condition(ConditionType.READY, True, Reason.VALID, "the spec is valid")
    )
    return PluginStatus(
        observed_generation=meta.get("generation"),
        conditions=merge_conditions(
            previous.get("conditions"), [ready], meta.get("generation"), now
        ),
        used_by=used_by,
    ).merge_patch()


async def reconcile_plugin(
    kube: Kube, plugin: Mapping[str, Any], now: datetime.datetime
) -> tuple[dict[str, Any], list[str]]:
    """Validate a Plugin and record its status; return it and the graphs to re-render.

    The graphs to re-render are those using it now and those that used it before (a label
    change can move a plugin out of a graph's selection).
    """
    meta = plugin.get("metadata") or {}
    error = None
    try:
        parse_plugin(plugin.get("spec") or {}, str(meta.get("name") or "plugin"))
    except InvalidSpec as exc:
        error = str(exc)
    graphs = await kube.list(GRAPH, meta["namespace"])
    used_by = graphs_selecting(plugin, graphs)
    stamp = now.astimezone(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    status = plugin_status(plugin, used_by, error, stamp)
    previous = plugin.get("status") or {}
    if {k: previous.get(k) for k in status} != status:
        await kube.merge_patch(
            PLUGIN, meta["namespace"], meta["name"], {"status": status}, "status"
        )
    if error and not _was_invalid(previous, error):
        await kube.post_event(plugin, "Warning", Reason.INVALID_SPEC, error, now)
    affected = sorted(set(used_by) | set(previous.get("usedBy") or []))
    return status, affected


def _was_invalid(previous: Mapping[str, Any], error: str) -> bool:
    for c in previous.get("conditions") or []:
        if c.get("type") == ConditionType.READY and c.get("reason") == Reason.INVALID_SPEC:
            return bool(c.get("message") == error)
    return False
