"""What the operator keeps of a child it read or watched, and whether applying it would change it.

A reconcile used to server-side apply every child every time: cheap for one graph, thousands of
requests per resync for a thousand. A child is now applied only when applying could change it:

- the body the operator would apply hashes differently from the one it applied last (the hash
  rides on the child as the :data:`APPLIED_HASH` annotation);
- another field manager owns a field the operator applies (someone edited a value the
  operator set: the field's ownership moves to them);
- the set of fields the operator's apply owns differs from the one it had after the operator's
  own last apply (someone removed a field, which drops it from every manager).

:func:`observe` trims an object to what reconciles read (pod templates, config data and managed
fields are large and never read back), so a thousand graphs' children fit in the operator's
memory. Pure: no I/O, no clock.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from memorygraph_operator.api.base import GROUP

__all__ = [
    "APPLIED_HASH",
    "Observed",
    "applied_hash",
    "controlled_by",
    "observe",
    "with_applied_hash",
]

APPLIED_HASH = f"{GROUP}/applied-hash"

# Large parts of a child the operator writes and never reads back.
_TOP_DROPPED = ("data", "binaryData", "stringData")


def controlled_by(obj: Mapping[str, Any], uid: str) -> bool:
    """Whether ``obj`` carries a controller reference to the graph with ``uid``."""
    refs = (obj.get("metadata") or {}).get("ownerReferences") or []
    return any(r.get("uid") == uid and r.get("controller") for r in refs)


def applied_hash(body: Mapping[str, Any]) -> str:
    """A digest of the body the operator applies (its own hash annotation left out)."""
    meta = dict(body.get("metadata") or {})
    annotations = {k: v for k, v in (meta.get("annotations") or {}).items() if k != APPLIED_HASH}
    meta["annotations"] = annotations
    canonical = json.dumps({**body, "metadata": meta}, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()[:32]


def with_applied_hash(body: Mapping[str, Any], digest: str) -> dict[str, Any]:
    """``body`` carrying ``digest`` as its :data:`APPLIED_HASH` annotation."""
    meta = dict(body.get("metadata") or {})
    meta["annotations"] = {**(meta.get("annotations") or {}), APPLIED_HASH: digest}
    return {**body, "metadata": meta}


def _leaves(fields: Mapping[str, Any], prefix: tuple[str, ...] = ()) -> Iterator[tuple[str, ...]]:
    """The owned leaf fields of a ``fieldsV1`` tree, as paths (``.`` marks a map or list
    itself, which several managers may own at once: it is not a value anyone set)."""
    for key, sub in fields.items():
        if key == ".":
            continue
        path = (*prefix, key)
        if isinstance(sub, Mapping) and any(k != "." for k in sub):
            yield from _leaves(sub, path)
        else:
            yield path


def _object_path(leaf: tuple[str, ...]) -> tuple[str, ...]:
    """A ``fieldsV1`` path as a path of map keys in the object, cut at the first list item
    (``k:``, ``v:``, ``i:``): the list as a whole, as :func:`_body_leaves` sees it."""
    out: list[str] = []
    for key in leaf:
        if not key.startswith("f:"):
            break
        out.append(key[2:])
    return tuple(out)


def _body_leaves(body: Any, prefix: tuple[str, ...] = ()) -> Iterator[tuple[str, ...]]:
    """The leaf paths of an object (a list is one leaf)."""
    if isinstance(body, Mapping) and body:
        for key, sub in body.items():
            yield from _body_leaves(sub, (*prefix, str(key)))
    else:
        yield prefix


def _overlap(paths: frozenset[tuple[str, ...]], body: Mapping[str, Any]) -> bool:
    """Whether any of ``paths`` is, contains or lies within a leaf of ``body``."""
    if not paths:
        return False
    for leaf in _body_leaves(body):
        for i in range(1, len(leaf) + 1):
            if leaf[:i] in paths:
                return True
    leaves = set(_body_leaves(body))
    return any(p[:i] in leaves for p in paths for i in range(1, len(p)))


def _is_operator_apply(entry: Mapping[str, Any], manager: str) -> bool:
    return (
        entry.get("manager") == manager
        and entry.get("operation") == "Apply"
        and not entry.get("subresource")
    )


@dataclass(frozen=True)
class Observed:
    """A child as last read or watched, trimmed, with what its managed fields tell.

    ``body`` keeps metadata (without managed fields), the spec without pod templates, and the
    status. ``applied_fields`` digests the fields the operator's apply owns (None: it never
    applied this object); ``foreign`` holds the paths other managers own outside the status
    (cut at lists, see :func:`_object_path`); ``replicas_managers`` names the managers that own
    ``spec.replicas``, and ``replicas_applied`` whether the operator's apply is one of them.
    """

    body: dict[str, Any]
    applied_fields: str | None = None
    foreign: frozenset[tuple[str, ...]] = frozenset()
    replicas_managers: frozenset[str] = frozenset()
    replicas_applied: bool = False

    @property
    def name(self) -> str:
        return str(self.body["metadata"]["name"])

    @property
    def annotation_hash(self) -> str | None:
        """The hash of the body the operator applied last, from the child's annotation."""
        value = ((self.body.get("metadata") or {}).get("annotations") or {}).get(APPLIED_HASH)
        return str(value) if value is not None else None

    def controlled_by(self, uid: str) -> bool:
        """Whether the child carries a controller reference to the graph with ``uid``."""
        return controlled_by(self.body, uid)

    def as_applied(self, desired: Mapping[str, Any], digest: str, fields: str | None) -> bool:
        """Whether applying ``desired`` (hashing to ``digest``) would change nothing: the
        child carries that hash, no other manager owns a field of it (someone changed a value
        the operator set, which moves the field to them), and the operator's apply still owns
        ``fields`` (someone removed a field; None when this process has not applied the
        child, e.g. after a restart: then the other checks decide)."""
        if self.annotation_hash != digest or self.applied_fields is None:
            return False
        if fields is not None and fields != self.applied_fields:
            return False
        return not _overlap(self.foreign, desired)


def _trim(body: Mapping[str, Any]) -> dict[str, Any]:
    trimmed = {k: v for k, v in body.items() if k not in _TOP_DROPPED}
    meta = {k: v for k, v in (body.get("metadata") or {}).items() if k != "managedFields"}
    trimmed["metadata"] = meta
    spec = body.get("spec")
    if isinstance(spec, Mapping):
        kept = {k: v for k, v in spec.items() if k not in ("template", "jobTemplate")}
        if isinstance(spec.get("template"), Mapping):
            # Of the pod template, the status reads only the images the pods run.
            containers = (spec["template"].get("spec") or {}).get("containers") or []
            kept["template"] = {
                "spec": {
                    "containers": [
                        {"name": c.get("name"), "image": c.get("image")} for c in containers
                    ]
                }
            }
        trimmed["spec"] = kept
    return trimmed


def observe(body: Mapping[str, Any], manager: str) -> Observed:
    """Trim a child read from the API server, keeping what its managed fields say about the
    apply of ``manager`` (the operator's field manager) and about everyone else's."""
    entries = [e for e in (body.get("metadata") or {}).get("managedFields") or [] if e]
    ours: set[tuple[str, ...]] = set()
    foreign: set[tuple[str, ...]] = set()
    replicas_managers: set[str] = set()
    replicas_applied = False
    for entry in entries:
        leaves = set(_leaves(entry.get("fieldsV1") or {}))
        owns_replicas = ("f:spec", "f:replicas") in leaves
        if owns_replicas:
            replicas_managers.add(str(entry.get("manager")))
        if _is_operator_apply(entry, manager):
            ours |= leaves
            replicas_applied = replicas_applied or owns_replicas
        elif entry.get("subresource") != "status":
            foreign |= {_object_path(leaf) for leaf in leaves}
    applied_fields = None
    if any(_is_operator_apply(e, manager) for e in entries):
        canonical = json.dumps(sorted(ours), separators=(",", ":"))
        applied_fields = hashlib.sha256(canonical.encode()).hexdigest()[:32]
    return Observed(
        body=_trim(body),
        applied_fields=applied_fields,
        foreign=frozenset(foreign),
        replicas_managers=frozenset(replicas_managers),
        replicas_applied=replicas_applied,
    )
