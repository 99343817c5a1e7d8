"""What the operator keeps of a child it read or watched, and whether applying it would change it.

A reconcile used to server-side apply every child every time: cheap for one graph, thousands of
requests per resync for a thousand. A child is now applied only when applying could change it:

- the body the operator would apply hashes differently from the one it applied last (the hash
  rides on the child as the :data:`APPLIED_HASH` annotation);
- the fields the operator's apply owns differ from those it owned after this process's last
  apply of the child: someone changed a value the operator set (server-side apply moves the
  field to them) or removed one (which removes it from every manager). A process that has not
  applied a child yet applies it once, to learn that set.

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
    applied this object); ``replicas_managers`` names the managers that own ``spec.replicas``,
    and ``replicas_applied`` whether the operator's apply is one of them.
    """

    body: dict[str, Any]
    applied_fields: str | None = None
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

    def as_applied(self, digest: str, fields: str | None) -> bool:
        """Whether applying the body hashing to ``digest`` would change nothing: the child
        carries that hash, and the operator's apply still owns ``fields``, what this process's
        last apply of it owned. Someone who changes a value the operator set takes the field
        over, and someone who removes one removes it from every manager: either way the
        apply owns less. None: this process has not applied the child yet, so it cannot
        tell, and applies it once."""
        return (
            fields is not None and self.annotation_hash == digest and fields == self.applied_fields
        )


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
    apply of ``manager`` (the operator's field manager)."""
    entries = [e for e in (body.get("metadata") or {}).get("managedFields") or [] if e]
    ours: set[tuple[str, ...]] = set()
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
    applied_fields = None
    if any(_is_operator_apply(e, manager) for e in entries):
        canonical = json.dumps(sorted(ours), separators=(",", ":"))
        applied_fields = hashlib.sha256(canonical.encode()).hexdigest()[:32]
    return Observed(
        body=_trim(body),
        applied_fields=applied_fields,
        replicas_managers=frozenset(replicas_managers),
        replicas_applied=replicas_applied,
    )
