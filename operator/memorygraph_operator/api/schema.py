"""Turns a pydantic model's JSON schema into a Kubernetes *structural* OpenAPI v3 schema.

Structural schemas forbid ``$ref``, ``anyOf`` with types, ``additionalProperties: false`` next to
``properties`` and ``null`` types, all of which pydantic emits. This module rewrites exactly those
constructs and fails loudly on anything else it does not understand, so a model change that cannot
be expressed in a CRD breaks generation instead of producing a schema the API server rejects.
"""

from __future__ import annotations

import copy
from typing import Any

from pydantic import BaseModel

__all__ = ["SchemaError", "structural_schema"]

_DROPPED = {"title"}


class SchemaError(ValueError):
    """A model uses a construct that has no structural-schema equivalent."""


def structural_schema(model: type[BaseModel]) -> dict[str, Any]:
    """The structural schema of ``model`` (camelCase field names, refs inlined)."""
    raw = model.model_json_schema(by_alias=True, mode="validation")
    defs = raw.pop("$defs", {})
    return _convert(raw, defs, path=model.__name__)


def _resolve(node: dict[str, Any], defs: dict[str, Any]) -> dict[str, Any]:
    ref = node.get("$ref")
    if ref is None:
        return node
    target: dict[str, Any] = copy.deepcopy(defs[ref.rsplit("/", 1)[-1]])
    # Sibling keys of a $ref (description, extras) refine the referenced schema.
    target.update({k: v for k, v in node.items() if k != "$ref"})
    return target


def _collapse_any_of(node: dict[str, Any], defs: dict[str, Any], path: str) -> dict[str, Any]:
    options = [_resolve(o, defs) for o in node["anyOf"]]
    non_null = [o for o in options if o.get("type") != "null"]
    rest = {k: v for k, v in node.items() if k != "anyOf"}
    if rest.get("default", "absent") is None:
        del rest["default"]
    if node.get("x-kubernetes-int-or-string"):
        types = {o.get("type") for o in non_null}
        if types != {"integer", "string"}:
            raise SchemaError(f"{path}: int-or-string field with types {types}")
        return rest
    if len(non_null) != 1:
        raise SchemaError(f"{path}: unions other than 'X or null' are not structural")
    merged = dict(non_null[0])
    merged.update(rest)
    return merged


def _additional_properties(
    value: Any, beside_properties: bool, defs: dict[str, Any], path: str
) -> dict[str, Any]:
    """The structural form of ``additionalProperties``: a map's value schema, or free-form."""
    if isinstance(value, dict):
        return {"additionalProperties": _convert(value, defs, f"{path}{{}}")}
    if value is True and not beside_properties:
        return {"x-kubernetes-preserve-unknown-fields": True}
    # ``False`` next to properties is the structural default (pruning): nothing to say.
    return {}


def _convert(node: dict[str, Any], defs: dict[str, Any], path: str) -> dict[str, Any]:
    node = _resolve(node, defs)
    if "anyOf" in node:
        node = _collapse_any_of(node, defs, path)
        node = _resolve(node, defs)
    if "allOf" in node or "oneOf" in node:
        raise SchemaError(f"{path}: allOf/oneOf are not supported")

    out: dict[str, Any] = {}
    for key, value in node.items():
        if key in _DROPPED:
            continue
        if key == "properties":
            out[key] = {name: _convert(sub, defs, f"{path}.{name}") for name, sub in value.items()}
        elif key == "items":
            out[key] = _convert(value, defs, f"{path}[]")
        elif key in ("exclusiveMinimum", "exclusiveMaximum") and not isinstance(value, bool):
            # JSON Schema 2020 puts the bound here; OpenAPI v3.0 wants a bound plus a flag.
            out["minimum" if key == "exclusiveMinimum" else "maximum"] = value
            out[key] = True
        elif key == "additionalProperties":
            out.update(_additional_properties(value, "properties" in node, defs, path))
        else:
            out[key] = copy.deepcopy(value)
    if out.get("x-kubernetes-preserve-unknown-fields") and out.get("type") == "object":
        out.pop("additionalProperties", None)
    typeless = "type" not in out and not out.get("x-kubernetes-int-or-string")
    if typeless and not out.get("x-kubernetes-preserve-unknown-fields"):
        raise SchemaError(f"{path}: no type")
    return out
