"""A kmock Kubernetes emulator with the API-server behaviour the operator relies on.

kmock stores objects as plain dicts. On top of it this adds, for mutating requests only:
server-side apply (create on first apply, per-manager field ownership so fields a manager stops
applying disappear, no new version when nothing changes), uid / resourceVersion / generation
bookkeeping (generation moves only with the spec), ``generateName``, and subresource patches
that leave the generation alone. Reads (get, list, watch, discovery) are kmock's own.
"""

from __future__ import annotations

import asyncio
import base64
import copy
import itertools
import json
import uuid
from typing import Any

import aiohttp.web
import attrs
import jsonpatch
from kmock import KubernetesEmulator, resource

__all__ = ["ApiServer"]

_META_KEEP = ("uid", "resourceVersion", "generation", "creationTimestamp", "managedFields")


def _merge(base: Any, patch: Any) -> Any:
    """JSON merge patch (RFC 7386)."""
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    out = dict(base) if isinstance(base, dict) else {}
    for key, value in patch.items():
        if value is None:
            out.pop(key, None)
        else:
            out[key] = _merge(out.get(key), value)
    return out


def _prune(obj: Any, previous: Any, current: Any, others: Any) -> Any:
    """Remove from ``obj`` what ``previous`` applied, ``current`` no longer applies and no
    other manager (``others``, their applied configs merged) applies either."""
    if not isinstance(obj, dict) or not isinstance(previous, dict):
        return obj
    current = current if isinstance(current, dict) else {}
    others = others if isinstance(others, dict) else {}
    out = dict(obj)
    for key, value in previous.items():
        if key not in current and key not in others:
            out.pop(key, None)
        elif isinstance(value, dict) and key in out:
            out[key] = _prune(out[key], value, current.get(key), others.get(key))
    return out


_UNOWNED = (
    ("metadata", "resourceVersion"),
    ("metadata", "generation"),
    ("metadata", "managedFields"),
)
_MISSING = object()


def _leaf_paths(old: Any, new: Any, prefix: tuple[str, ...] = ()) -> set[tuple[str, ...]]:
    """Paths whose value differs between two objects (a whole subtree when one side is no
    dict): what an update changes, added or removed."""
    if isinstance(old, dict) and isinstance(new, dict):
        out: set[tuple[str, ...]] = set()
        for key in set(old) | set(new):
            if (*prefix, key) in _UNOWNED:
                continue
            out |= _leaf_paths(old.get(key, _MISSING), new.get(key, _MISSING), (*prefix, key))
        return out
    return set() if old == new else {prefix}


def _drop(tree: dict[str, Any], path: tuple[str, ...]) -> None:
    """Remove ``path`` from a manager's fields (a value tree): it owns it no more."""
    node: Any = tree
    for i, key in enumerate(path):
        if not isinstance(node, dict) or key not in node:
            return
        if i == len(path) - 1 or not isinstance(node[key], dict):
            del node[key]
            return
        node = node[key]


def _set(tree: dict[str, Any], path: tuple[str, ...], value: Any) -> None:
    node = tree
    for key in path[:-1]:
        node = node.setdefault(key, {})
        if not isinstance(node, dict):
            return
    node[path[-1]] = copy.deepcopy(value)


def _get(obj: Any, path: tuple[str, ...]) -> Any:
    for key in path:
        if not isinstance(obj, dict) or key not in obj:
            return _MISSING
        obj = obj[key]
    return obj


def _managed_fields(applied: dict[str, Any]) -> dict[str, Any]:
    def walk(node: Any) -> Any:
        if not isinstance(node, dict):
            return {}
        return {f"f:{k}": walk(v) for k, v in node.items()}

    return walk({k: v for k, v in applied.items() if k not in ("apiVersion", "kind")})


@attrs.define(kw_only=True)
class ApiServer(KubernetesEmulator):
    """Stateful fake API server; ``applied[(plural, ns, name)][manager]`` is what each applied."""

    applied: dict[tuple[str, str | None, str], dict[str, dict[str, Any]]] = attrs.field(
        factory=dict
    )
    # What managers that updated (not applied) an object own, as value trees, like ``applied``.
    updated: dict[tuple[str, str | None, str], dict[str, dict[str, Any]]] = attrs.field(
        factory=dict
    )
    writes: list[tuple[str, str, str | None, str]] = attrs.field(factory=list)
    # (verb, API group, resource[/subresource]) of every Kubernetes request, for RBAC checks.
    calls: list[tuple[str, str, str]] = attrs.field(factory=list)
    _rv: Any = attrs.field(factory=lambda: itertools.count(1000))
    _pending: set[Any] = attrs.field(factory=set)
    # plural → message: writes to that resource fail with 422 (an admission webhook saying no).
    reject: dict[str, str] = attrs.field(factory=dict)

    def _publish(self, res: Any, type_: str, obj: dict[str, Any]) -> None:
        """Feed watchers (kopf) the change, as the API server's watch stream would."""
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            return
        event = {"type": type_, "object": copy.deepcopy(obj)}
        task = loop.create_task(self._buses[res].put(event))
        self._pending.add(task)
        task.add_done_callback(self._pending.discard)

    def _stamp_new(self, obj: dict[str, Any]) -> dict[str, Any]:
        meta = obj.setdefault("metadata", {})
        meta["uid"] = str(uuid.uuid4())
        meta["resourceVersion"] = str(next(self._rv))
        meta["creationTimestamp"] = "2026-01-01T00:00:00Z"
        meta["generation"] = 1
        return obj

    def _store(
        self, res: Any, ns: str | None, name: str, new: dict[str, Any], old: dict[str, Any] | None
    ) -> None:
        if old is not None:
            if (old.get("spec"), old.get("data")) != (new.get("spec"), new.get("data")):
                new["metadata"]["generation"] = old["metadata"].get("generation", 1) + 1
            new["metadata"]["resourceVersion"] = str(next(self._rv))
        key = (res, ns, name)
        if key in self.objects and not self.objects[key].deleted:
            self.objects[key].history.append(kmock_version(new))
        elif key in self.objects:
            self.objects[key].create(new)
        else:
            self.objects[key] = new
        self._publish(res, "ADDED" if old is None else "MODIFIED", new)

    async def _handle(self, request: Any) -> aiohttp.web.StreamResponse:
        res = request.resource
        method = request.method.upper()
        if res is not None and res.plural:
            verb = {"POST": "create", "PATCH": "patch", "DELETE": "delete", "PUT": "update"}.get(
                method, "get" if request.name else "list"
            )
            plural = f"{res.plural}/{request.subresource}" if request.subresource else res.plural
            self.calls.append((verb, res.group or "", plural))
        if res is None or method not in ("POST", "PATCH", "DELETE"):
            return await super()._handle(request)
        if res.plural in self.reject:
            return _status(422, "Invalid", self.reject[res.plural])
        ns = request.namespace
        ctype = request.headers.get("Content-Type", "")
        body = json.loads(request.body) if request.body else {}
        async with self._lock:
            if method == "POST":
                return self._create(res, ns, body)
            if method == "DELETE":
                return self._delete(res, ns, request.name, body)
            if request.subresource:
                return self._patch(res, ns, request.name, body, subresource=True)
            if "apply-patch" in ctype:
                return self._apply(
                    res, ns, request.name, body, request.params.get("fieldManager", "")
                )
            return self._patch(res, ns, request.name, body, subresource=False)

    def _current(self, res: Any, ns: str | None, name: str) -> dict[str, Any] | None:
        key = (res, ns, name)
        if key not in self.objects or self.objects[key].deleted:
            return None
        return copy.deepcopy(self.objects[key].raw)

    def _create(self, res: Any, ns: str | None, body: dict[str, Any]) -> aiohttp.web.StreamResponse:
        meta = body.setdefault("metadata", {})
        if not meta.get("name") and meta.get("generateName"):
            meta["name"] = f"{meta['generateName']}{uuid.uuid4().hex[:8]}"
        name = meta["name"]
        meta.setdefault("namespace", ns)
        if self._current(res, ns, name) is not None:
            return _status(409, "AlreadyExists", f"{res.plural} {name} already exists")
        new = self._stamp_new(body)
        if res.plural == "secrets" and "stringData" in new:
            # As a real API server stores it (which also drops `stringData`: kept here for the
            # tests that read the keys drawn).
            encoded = {
                k: base64.b64encode(v.encode()).decode() for k, v in new["stringData"].items()
            }
            new["data"] = {**new.get("data", {}), **encoded}
        self._store(res, ns, name, new, None)
        self.writes.append(("create", res.plural, ns, name))
        return aiohttp.web.json_response(new, status=201)

    def _delete(
        self, res: Any, ns: str | None, name: str, options: dict[str, Any]
    ) -> aiohttp.web.StreamResponse:
        old = self._current(res, ns, name)
        if old is None:
            return _status(404, "NotFound", f"{res.plural} {name} not found")
        uid = (options.get("preconditions") or {}).get("uid")
        if uid is not None and uid != old["metadata"].get("uid"):
            return _status(409, "Conflict", f"{res.plural} {name}: precondition on uid failed")
        self.objects[(res, ns, name)].delete()
        self.applied.pop((res.plural, ns, name), None)
        self.updated.pop((res.plural, ns, name), None)
        self._publish(res, "DELETED", old)
        self.writes.append(("delete", res.plural, ns, name))
        return aiohttp.web.json_response({"kind": "Status", "status": "Success"})

    def _patch(
        self, res: Any, ns: str | None, name: str, body: dict[str, Any], subresource: bool
    ) -> aiohttp.web.StreamResponse:
        old = self._current(res, ns, name)
        if old is None:
            return _status(404, "NotFound", f"{res.plural} {name} not found")
        # A resourceVersion in a merge patch is a precondition, as on a real API server.
        expected = (
            (body.get("metadata") or {}).get("resourceVersion") if isinstance(body, dict) else None
        )
        if expected is not None and expected != old["metadata"].get("resourceVersion"):
            return _status(409, "Conflict", f"{res.plural} {name} has changed since {expected}")
        # kopf sends JSON patches (lists of operations) for some changes, merge patches otherwise.
        try:
            new = jsonpatch.apply_patch(old, body) if isinstance(body, list) else _merge(old, body)
        except jsonpatch.JsonPatchTestFailed as exc:  # e.g. a stale resourceVersion
            return _status(409, "Conflict", str(exc))
        if new == old:
            return aiohttp.web.json_response(old)
        if subresource:
            new["metadata"]["resourceVersion"] = str(next(self._rv))
            self.objects[(res, ns, name)].history.append(kmock_version(new))
            self._publish(res, "MODIFIED", new)
        else:
            self._store(res, ns, name, new, old)
        self.writes.append(("patch", res.plural, ns, name))
        return aiohttp.web.json_response(new)

    def _apply(
        self, res: Any, ns: str | None, name: str, body: dict[str, Any], manager: str
    ) -> aiohttp.web.StreamResponse:
        key = (res.plural, ns, name)
        old = self._current(res, ns, name)
        managers = self.applied.setdefault(key, {})
        previous = managers.get(manager, {})
        managers[manager] = copy.deepcopy(body)
        # Forced: the fields this apply sets leave whoever updated them.
        updaters = self.updated.get(key, {})
        for path in _leaf_paths({}, body):
            for fields in updaters.values():
                _drop(fields, path)
        for updater in [u for u, fields in updaters.items() if not _leaf_paths({}, fields)]:
            del updaters[updater]
        if old is None:
            # Creating through apply needs the create permission as well as patch.
            self.calls.append(("create", res.group or "", res.plural))
            new = self._stamp_new(copy.deepcopy(body))
        else:
            others: dict[str, Any] = {}
            for other, applied in managers.items():
                if other != manager:
                    others = _merge(others, applied)
            for fields in updaters.values():
                others = _merge(others, fields)
            new = _merge(_prune(old, previous, body, others), body)
            for field in _META_KEEP:
                if field in old["metadata"]:
                    new["metadata"][field] = old["metadata"][field]
        new["metadata"]["managedFields"] = self._managed(key)
        if old is not None and new == old:
            return aiohttp.web.json_response(old)
        self._store(res, ns, name, new, old)
        self.writes.append(("apply", res.plural, ns, name))
        return aiohttp.web.json_response(new, status=201 if old is None else 200)

    def _managed(self, key: tuple[str, str | None, str]) -> list[dict[str, Any]]:
        return [
            {"manager": m, "operation": "Apply", "fieldsV1": _managed_fields(a)}
            for m, a in sorted(self.applied.get(key, {}).items())
        ] + [
            {"manager": m, "operation": "Update", "fieldsV1": _managed_fields(f)}
            for m, f in sorted(self.updated.get(key, {}).items())
        ]

    # Test conveniences ---------------------------------------------------------------------

    def read(self, plural_ref: str, ns: str | None, name: str) -> dict[str, Any] | None:
        """The stored object, e.g. ``get('apps/v1/statefulsets', 'apps', 'x')``."""
        return self._current(resource(plural_ref), ns, name)

    def store(self, plural_ref: str, obj: dict[str, Any]) -> dict[str, Any]:
        """Store an object as if created by someone else (uid and generation assigned)."""
        new = self._stamp_new(copy.deepcopy(obj))
        meta = new["metadata"]
        self._store(resource(plural_ref), meta.get("namespace"), meta["name"], new, None)
        return new

    def edit(
        self,
        plural_ref: str,
        ns: str | None,
        name: str,
        patch: dict[str, Any],
        manager: str = "kubectl-edit",
    ) -> None:
        """Change an object behind the operator's back (a human with kubectl edit).

        As an update by ``manager``: the fields it changes become its own and leave the
        managers that applied them; the fields it removes leave every manager.
        """
        res = resource(plural_ref)
        old = self._current(res, ns, name)
        assert old is not None
        new = _merge(old, patch)
        if "managedFields" in (patch.get("metadata") or {}):
            # The test says who manages what: store it as it is.
            self._store(res, ns, name, new, old)
            return
        key = (res.plural, ns, name)
        owned = self.updated.setdefault(key, {}).setdefault(manager, {})
        for path in _leaf_paths(old, new):
            for fields in [*self.applied.get(key, {}).values(), *self.updated[key].values()]:
                _drop(fields, path)
            value = _get(new, path)
            if value is not _MISSING:
                _set(owned, path, value)
        if not _leaf_paths({}, owned):
            del self.updated[key][manager]
        new.setdefault("metadata", {})["managedFields"] = self._managed(key)
        self._store(res, ns, name, new, old)


def kmock_version(obj: dict[str, Any]) -> Any:
    from kmock import ObjectVersion

    return ObjectVersion(obj)


def _status(code: int, reason: str, message: str) -> aiohttp.web.StreamResponse:
    return aiohttp.web.json_response(
        {
            "kind": "Status",
            "apiVersion": "v1",
            "status": "Failure",
            "code": code,
            "reason": reason,
            "message": message,
        },
        status=code,
    )
