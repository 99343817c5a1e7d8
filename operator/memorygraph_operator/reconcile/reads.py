"""Where a reconcile reads the cluster: the operator's watches when it runs them, else the API.

A running operator watches every kind of child and the Plugins (kopf indices, fed by the watch
streams it holds anyway) and hands them to :class:`ClusterReads`, so an unchanged graph costs
no reads of its children. Without them (tests, a one-off reconcile) every read is a request.

What the watches say may lag behind the API server by a moment. That is safe by construction:
a child that looks missing or changed is applied (an idempotent server-side apply), a child is
deleted only if it exists, and plugin status patches carry the resourceVersion they were
computed from, so a stale one is refused and retried.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Mapping
from typing import Any

from memorygraph_operator.kube import FIELD_MANAGER, Kube, ResourceType
from memorygraph_operator.reconcile.observed import Observed, observe
from memorygraph_operator.reconcile.usage import PLUGIN

# How long a generated Secret seen to exist is not read again (Secrets are not watched).
SECRET_RECHECK_SECONDS = 600.0

__all__ = ["ChildIndex", "ClusterReads", "PluginIndex"]

# A kind's children by (namespace, name), and the Plugins by namespace; kopf's indices have
# this shape (a collection of values per key).
ChildIndex = Mapping[tuple[str, str], Iterable[Observed]]
PluginIndex = Mapping[str, Iterable[Mapping[str, Any]]]


def _key(kind: str, observed: Observed) -> tuple[str, str, str, str, str]:
    meta = observed.body["metadata"]
    return (
        kind,
        str(meta.get("namespace")),
        observed.name,
        str(meta.get("uid")),
        str(meta.get("resourceVersion")),
    )


class ClusterReads:
    """Children, Plugins and API discovery, from the watches once :meth:`use_watches` has
    handed them over; from the API until then.

    ``children`` maps a kind (``StatefulSet``) to its index; a kind missing from it is read
    from the API. Discovery answers are kept ``discovery_seconds``. It also remembers, per
    graph, which fields the operator's last apply of each child owned (see
    :meth:`Observed.as_applied`).
    """

    def __init__(self, kube: Kube) -> None:
        self.kube = kube
        self._children: dict[str, ChildIndex] = {}
        self._plugins: PluginIndex | None = None
        self._discovery_seconds = 0.0
        self._served: dict[tuple[str, str], tuple[float, bool]] = {}
        self._applied: dict[tuple[str, str], dict[tuple[str, str], tuple[str | None, str]]] = {}
        # Entries a watch still shows of objects a listing no longer has: (kind, namespace,
        # name, uid, resourceVersion). See :meth:`forget_missing`.
        self._gone: set[tuple[str, str, str, str, str]] = set()
        # The data of ConfigMaps read for it (the watches keep none), by the resourceVersion
        # it was read at: (namespace, name) → (resourceVersion, body).
        self._with_data: dict[tuple[str, str], tuple[str, dict[str, Any]]] = {}
        # Generated Secrets seen to exist (they are never watched): (namespace, name) -> (the
        # graph's uid, when seen).
        self._secrets: dict[tuple[str, str], tuple[str, float]] = {}

    def use_watches(
        self,
        children: Mapping[str, ChildIndex],
        plugins: PluginIndex | None,
        discovery_seconds: float,
    ) -> None:
        """Read children and Plugins from these indices from now on, and keep discovery
        answers ``discovery_seconds``."""
        self._children = dict(children)
        self._plugins = plugins
        self._discovery_seconds = discovery_seconds

    @property
    def watched(self) -> bool:
        """Whether children come from watches (so a reconcile reads none from the API)."""
        return bool(self._children)

    async def with_data(self, rt: ResourceType, namespace: str, name: str) -> dict[str, Any] | None:
        """The whole object, data included, read from the API only when the watch shows it
        changed since it was last read (an unchanged one costs no request), or does not show
        it (a watch may lag behind: only the API server says an object does not exist)."""
        seen = await self.child(rt, namespace, name)
        kept = self._with_data.get((namespace, name))
        if seen is not None and kept is not None:
            version = str(seen.body["metadata"].get("resourceVersion") or "")
            if version and kept[0] == version:
                return kept[1]
        body = await self.kube.get(rt, namespace, name)
        if body is None:
            self._with_data.pop((namespace, name), None)
            return None
        read_at = str(body["metadata"].get("resourceVersion") or "")
        self._with_data[(namespace, name)] = (read_at, body)
        return body

    def remember_data(self, namespace: str, name: str, body: Mapping[str, Any]) -> None:
        """``body`` is the object as the API server holds it now (just applied): the next
        :meth:`with_data` needs no request for it."""
        version = str((body.get("metadata") or {}).get("resourceVersion") or "")
        if version:
            self._with_data[(namespace, name)] = (version, dict(body))

    async def child(self, rt: ResourceType, namespace: str, name: str) -> Observed | None:
        """The child as last seen, or None when it does not exist."""
        index = self._children.get(rt.kind)
        if index is None:
            body = await self.kube.get(rt, namespace, name)
            return None if body is None else observe(body, FIELD_MANAGER)
        # A name can hold two objects for a moment (one being deleted, its successor just
        # created): the live one is the one that counts.
        found = [o for o in index.get((namespace, name), ()) if _key(rt.kind, o) not in self._gone]
        live = [o for o in found if not o.body["metadata"].get("deletionTimestamp")]
        chosen = live or found
        return chosen[-1] if chosen else None

    def watched_kinds(self) -> list[str]:
        """The kinds of children read from watches."""
        return list(self._children)

    def entries(self, kind: str) -> set[tuple[str, str, str, str, str]]:
        """The entries the watch of ``kind`` holds now: (kind, namespace, name, uid,
        resourceVersion)."""
        index = self._children.get(kind)
        if index is None:
            return set()
        return {_key(kind, o) for key in list(index) for o in index.get(key, ())}

    def forget_missing(
        self,
        kind: str,
        before: set[tuple[str, str, str, str, str]],
        listed: set[tuple[str, str, str]],
    ) -> int:
        """Ignore the entries of ``kind`` that the watch held ``before`` a listing began and
        the listing does not have; how many.

        A watch that reconnects after a long gap lists the kind again, and an object deleted
        during the gap never gets its deletion event: its entry would stay, and a child
        deleted then would never be made again. Only entries from before the listing are
        judged (one made while it ran is not in it, yet exists), and an entry that changes
        afterwards (a new resourceVersion: the object exists) counts again.
        """
        gone = {e for e in before if (e[1], e[2], e[3]) not in listed}
        self._gone = {g for g in self._gone if g[0] != kind} | gone
        return len(gone)

    async def plugins(self, namespace: str) -> list[dict[str, Any]]:
        """The Plugins of a namespace."""
        if self._plugins is None:
            return await self.kube.list(PLUGIN, namespace)
        return [dict(p) for p in self._plugins.get(namespace, ())]

    async def served(self, api_version: str, plural: str) -> bool:
        """Whether the API server serves a resource, asked at most every discovery period."""
        key = (api_version, plural)
        now = time.monotonic()
        cached = self._served.get(key)
        if cached is not None and now - cached[0] < self._discovery_seconds:
            return cached[1]
        answer = await self.kube.resource_exists(api_version, plural)
        self._served[key] = (now, answer)
        return answer

    def last_applied(
        self, namespace: str, graph: str, kind: str, name: str
    ) -> tuple[str | None, str] | None:
        """What this process's last apply of a child left: the child's hash annotation and the
        digest of the fields the apply owned; None if this process never applied it."""
        return self._applied.get((namespace, graph), {}).get((kind, name))

    def record_applied(
        self, namespace: str, graph: str, kind: str, name: str, applied: Observed
    ) -> None:
        """Remember what an apply of a child, answered with ``applied``, left."""
        if applied.applied_fields is not None:
            entry = (applied.annotation_hash, applied.applied_fields)
            self._applied.setdefault((namespace, graph), {})[(kind, name)] = entry

    def as_last_applied(self, namespace: str, graph: str, kind: str, observed: Observed) -> bool:
        """Whether a watched child is exactly as this process's last apply left it (so its
        change was that apply, or only its status moved)."""
        last = self.last_applied(namespace, graph, kind, observed.name)
        return last is not None and (observed.annotation_hash, observed.applied_fields) == last

    def secret_known(self, namespace: str, name: str, uid: str) -> bool:
        """Whether the graph ``uid``'s generated Secret ``name`` was seen to exist less than
        :data:`SECRET_RECHECK_SECONDS` ago (one deleted by hand is made again within that)."""
        seen = self._secrets.get((namespace, name))
        return (
            seen is not None
            and seen[0] == uid
            and time.monotonic() - seen[1] < (SECRET_RECHECK_SECONDS)
        )

    def secret_seen(self, namespace: str, name: str, uid: str) -> None:
        self._secrets[(namespace, name)] = (uid, time.monotonic())

    def secret_unused(self, namespace: str, name: str) -> None:
        self._secrets.pop((namespace, name), None)

    def forget(self, namespace: str, graph: str) -> None:
        """A graph is gone: drop what was remembered about its children."""
        self._applied.pop((namespace, graph), None)
        for key in [k for k in self._secrets if k[0] == namespace and k[1].startswith(graph + "-")]:
            self._secrets.pop(key)
        for key in [k for k in self._with_data if k[0] == namespace and k[1].startswith(graph)]:
            self._with_data.pop(key)
