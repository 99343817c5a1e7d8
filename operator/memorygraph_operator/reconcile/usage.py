"""Which graphs use which plugins: keeps each Plugin's ``status.usedBy`` current.

Graphs change their selection more often than plugins change, so every graph reconcile (and a
graph's deletion) updates the plugins it joined or left; plugin reconciles recompute the full
list from scratch (see :mod:`.plugins`).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from memorygraph_operator.api.base import API_VERSION
from memorygraph_operator.api.plugin import PluginStatus
from memorygraph_operator.errors import Conflict
from memorygraph_operator.kube import Kube, resource_for

__all__ = ["PLUGIN", "record_plugin_users"]

PLUGIN = resource_for(API_VERSION, "Plugin")


_ATTEMPTS = 5


def _changes(
    plugins: Iterable[Mapping[str, Any]], graph: str, selected: set[str]
) -> list[tuple[str, str | None, list[str]]]:
    """The plugins whose ``usedBy`` must change: name, the resourceVersion seen, new users."""
    out = []
    for plugin in plugins:
        meta = plugin["metadata"]
        name = meta["name"]
        used = set((plugin.get("status") or {}).get("usedBy") or [])
        if (graph in used) == (name in selected):
            continue
        users = sorted(used | {graph}) if name in selected else sorted(used - {graph})
        out.append((name, meta.get("resourceVersion"), users))
    return out


async def record_plugin_users(
    kube: Kube,
    namespace: str,
    graph: str,
    plugins: Iterable[Mapping[str, Any]],
    selected: set[str],
) -> None:
    """Add ``graph`` to the ``usedBy`` of the plugins in ``selected``, remove it elsewhere.

    ``plugins`` may come from a watch and lag. Each patch carries the resourceVersion it was
    computed from, so the API server refuses it (:class:`Conflict`) if the plugin changed
    since, rather than one graph's update undoing another's; the Plugins are then listed
    afresh and the change computed again.
    """
    changes = _changes(plugins, graph, selected)
    for _ in range(_ATTEMPTS):
        refused = False
        for name, version, users in changes:
            patch: dict[str, Any] = {"status": PluginStatus(used_by=users).merge_patch()}
            if version:
                patch["metadata"] = {"resourceVersion": version}
            try:
                await kube.merge_patch(PLUGIN, namespace, name, patch, "status")
            except Conflict:
                refused = True
        if not refused:
            return
        changes = _changes(await kube.list(PLUGIN, namespace), graph, selected)
    raise Conflict(f"plugins of {namespace}: usedBy of {graph} kept changing underneath")
