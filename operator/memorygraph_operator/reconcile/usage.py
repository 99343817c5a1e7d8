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
from memorygraph_operator.kube import Kube, resource_for

__all__ = ["PLUGIN", "record_plugin_users"]

PLUGIN = resource_for(API_VERSION, "Plugin")


async def record_plugin_users(
    kube: Kube,
    namespace: str,
    graph: str,
    plugins: Iterable[Mapping[str, Any]],
    selected: set[str],
) -> None:
    """Add ``graph`` to the ``usedBy`` of the plugins in ``selected``, remove it elsewhere.

    ``plugins`` may come from a watch and lag: each patch carries the resourceVersion it was
    computed from, and the API server refuses it (:class:`Conflict`) if the plugin changed
    since, rather than one graph's update undoing another's.
    """
    for plugin in plugins:
        meta = plugin["metadata"]
        name = meta["name"]
        used = set((plugin.get("status") or {}).get("usedBy") or [])
        if (graph in used) == (name in selected):
            continue
        users = sorted(used | {graph}) if name in selected else sorted(used - {graph})
        patch: dict[str, Any] = {"status": PluginStatus(used_by=users).merge_patch()}
        if meta.get("resourceVersion"):
            patch["metadata"] = {"resourceVersion": meta["resourceVersion"]}
        await kube.merge_patch(PLUGIN, namespace, name, patch, "status")
