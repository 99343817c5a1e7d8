"""Parsing custom resources into renderer inputs: validation, plugin selection. Pure.

Everything that can make a spec invalid is decided here, so the handler can turn it into one
``InvalidSpec`` condition and one Event instead of retrying.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from memorygraph.plugins.schema import PluginSpec as DataPlanePluginSpec
from pydantic import ValidationError
from pydantic.alias_generators import to_camel

from memorygraph_operator.api.memorygraph import MemoryGraphSpec
from memorygraph_operator.api.plugin import PluginSpec
from memorygraph_operator.errors import InvalidSpec
from memorygraph_operator.render.config import plugin_entry
from memorygraph_operator.render.context import GraphInputs, NamedPlugin
from memorygraph_operator.render.metadata import ANNOTATION_PAUSED, ANNOTATION_RESTARTED_AT

__all__ = [
    "PluginSelection",
    "describe_validation_error",
    "is_paused",
    "parse_graph",
    "parse_plugin",
    "select_plugins",
]


def describe_validation_error(exc: ValidationError) -> str:
    """One line naming each offending field by its API path (camelCase)."""
    parts = []
    for err in exc.errors():
        loc = ".".join(str(p) for p in err["loc"] if not str(p).startswith("function-"))
        msg = str(err["msg"]).removeprefix("Value error, ")
        parts.append(f"{loc}: {msg}" if loc else msg)
    return "; ".join(parts)


def _describe_data_plane_problems(exc: ValidationError) -> str:
    # The data plane checks ``config`` against the plugin type's model from inside a validator,
    # so those errors carry no ``config`` prefix: anything not a top-level key is in ``config``.
    top_level = set(DataPlanePluginSpec.model_fields)
    parts = []
    for err in exc.errors():
        loc = [str(p) for p in err["loc"]]
        if loc and loc[0] in top_level:
            path = ".".join([to_camel(loc[0]), *loc[1:]])
        else:
            path = ".".join(["config", *loc])
        parts.append(f"{path}: {str(err['msg']).removeprefix('Value error, ')}")
    return "the data plane refuses this plugin: " + "; ".join(parts)


def parse_plugin(spec: Mapping[str, Any], name: str = "plugin") -> PluginSpec:
    """Validate a Plugin's spec; raise :class:`InvalidSpec` naming the fields.

    The spec is also checked the way the data plane will read it (its own ``plugins.yaml``
    model: hook names, the type's ``config`` keys, RE2 patterns). The data plane refuses a whole
    file over one bad entry, and a pod does not start with it, so such a Plugin must be caught
    here and left out of every graph's config.
    """
    try:
        parsed = PluginSpec.model_validate(dict(spec))
    except ValidationError as exc:
        raise InvalidSpec(describe_validation_error(exc)) from exc
    try:
        DataPlanePluginSpec.model_validate(plugin_entry(NamedPlugin(name, parsed)))
    except ValidationError as exc:
        raise InvalidSpec(_describe_data_plane_problems(exc)) from exc
    return parsed


def is_paused(meta: Mapping[str, Any]) -> bool:
    """Whether the pause annotation is set to a true value."""
    value = (meta.get("annotations") or {}).get(ANNOTATION_PAUSED, "")
    return str(value).lower() in {"true", "1", "yes"}


@dataclass(frozen=True)
class PluginSelection:
    """Outcome of matching a graph's plugin selection against the Plugins that exist."""

    selected: tuple[NamedPlugin, ...]
    missing: tuple[str, ...]
    invalid: tuple[str, ...]


def select_plugins(spec: MemoryGraphSpec, plugins: Sequence[Mapping[str, Any]]) -> PluginSelection:
    """The Plugins a graph selects (by name or label) among ``plugins`` of its namespace.

    Plugins named but absent are ``missing``; selected but invalid ones are ``invalid`` and left
    out of the config rather than failing the whole graph.
    """
    if spec.plugins is None:
        return PluginSelection((), (), ())
    names = set(spec.plugins.names or [])
    selector = spec.plugins.selector
    selected: list[NamedPlugin] = []
    invalid: list[str] = []
    seen: set[str] = set()
    for obj in plugins:
        meta = obj.get("metadata") or {}
        name = str(meta.get("name", ""))
        if meta.get("deletionTimestamp"):
            continue
        labels = dict(meta.get("labels") or {})
        if name not in names and not (selector is not None and selector.matches(labels)):
            continue
        seen.add(name)
        try:
            selected.append(NamedPlugin(name, parse_plugin(obj.get("spec") or {}, name)))
        except InvalidSpec:
            invalid.append(name)
    missing = sorted(names - seen)
    return PluginSelection(
        tuple(sorted(selected, key=lambda p: p.name)), tuple(missing), tuple(sorted(invalid))
    )


def parse_graph(body: Mapping[str, Any], plugins: tuple[NamedPlugin, ...] = ()) -> GraphInputs:
    """Renderer inputs from a MemoryGraph object; raise :class:`InvalidSpec` when invalid."""
    meta = body.get("metadata") or {}
    try:
        spec = MemoryGraphSpec.model_validate(dict(body.get("spec") or {}))
    except ValidationError as exc:
        raise InvalidSpec(describe_validation_error(exc)) from exc
    annotations = meta.get("annotations") or {}
    return GraphInputs(
        name=str(meta["name"]),
        namespace=str(meta.get("namespace", "default")),
        uid=str(meta.get("uid", "")),
        spec=spec,
        plugins=plugins,
        restarted_at=annotations.get(ANNOTATION_RESTARTED_AT) or None,
    )
