"""Prompt templates: the rules for a template and its variables (RE2 patterns), rendering it,
and the graph's operations on templates — creating them, finding them by id or name, and
instantiating them (rendering the text and, with a session, recording it there as a prompt).

Placeholders are ``{{name}}`` (spaces inside the braces allowed). `validate_template` and
`render_template` are pure functions over plain data; `Templates` stores templates, counts their
use and passes the hook points around instantiation.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import replace
from typing import Any

import re2  # type: ignore[import-untyped]

from memorygraph.errors import AlreadyExists, InvalidArgument, NotFound
from memorygraph.graph.checks import Limits, require_kind
from memorygraph.graph.creation import Creator
from memorygraph.graph.hooks import GraphHooks, Instantiation, Read
from memorygraph.graph.writes import Writer
from memorygraph.model import (
    NewNode,
    Node,
    NodeKind,
    PromptDetails,
    TemplateDetails,
    TemplateVariable,
    format_id,
    name_tag,
    new_id,
)
from memorygraph.store import GraphStore

__all__ = ["Templates", "render_template", "validate_template"]


PLACEHOLDER = re.compile(r"\{\{\s*([A-Za-z_][A-Za-z0-9_]*)\s*\}\}")
VARIABLE_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
MAX_NAME_LENGTH = 200

_RE2_OPTIONS = re2.Options()
_RE2_OPTIONS.log_errors = False


def _compile(variable: TemplateVariable) -> Any:
    try:
        return re2.compile(variable.pattern, _RE2_OPTIONS)
    except re2.error as exc:
        reason = exc.args[0].decode() if exc.args and isinstance(exc.args[0], bytes) else exc
        raise InvalidArgument(
            f"variable {variable.name!r}: pattern {variable.pattern!r} is not a valid RE2 "
            f"expression: {reason}"
        ) from None


def validate_template(name: str, content: str, variables: Sequence[TemplateVariable]) -> None:
    """Raise `InvalidArgument` for anything that would make the template unusable."""
    if not name.strip():
        raise InvalidArgument("template name is required")
    if len(name) > MAX_NAME_LENGTH:
        raise InvalidArgument(f"template name is longer than {MAX_NAME_LENGTH} characters")
    if not content.strip():
        raise InvalidArgument("template content is required")
    seen: set[str] = set()
    for variable in variables:
        if not VARIABLE_NAME.fullmatch(variable.name):
            raise InvalidArgument(
                f"variable name {variable.name!r} is invalid: use letters, digits and "
                "underscores, not starting with a digit"
            )
        if variable.name in seen:
            raise InvalidArgument(f"variable {variable.name!r} is declared twice")
        seen.add(variable.name)
        if variable.pattern:
            regex = _compile(variable)
            if variable.default_value and not regex.fullmatch(variable.default_value):
                raise InvalidArgument(
                    f"variable {variable.name!r}: default value {variable.default_value!r} "
                    f"does not match its pattern {variable.pattern!r}"
                )
    undeclared = sorted({m.group(1) for m in PLACEHOLDER.finditer(content)} - seen)
    if undeclared:
        raise InvalidArgument(
            "template content uses undeclared variables: " + ", ".join(undeclared)
        )


def render_template(
    content: str,
    variables: Sequence[TemplateVariable],
    values: dict[str, str],
    max_bytes: int | None = None,
) -> str:
    """The content with every placeholder replaced; `InvalidArgument` lists what is wrong,
    or says that the text would take more than `max_bytes` (checked before it is made: a
    value repeated in many placeholders could otherwise take any amount of memory)."""
    declared = {v.name: v for v in variables}
    unknown = sorted(set(values) - set(declared))
    if unknown:
        raise InvalidArgument("unknown template variables: " + ", ".join(unknown))
    missing = sorted(
        v.name for v in variables if v.required and v.name not in values and not v.default_value
    )
    if missing:
        raise InvalidArgument("missing required template variables: " + ", ".join(missing))
    resolved: dict[str, str] = {}
    for variable in variables:
        value = values.get(variable.name, variable.default_value)
        given = variable.name in values
        if variable.pattern and given and not _compile(variable).fullmatch(value):
            raise InvalidArgument(
                f"variable {variable.name!r}: value {value[:100]!r} does not match "
                f"pattern {variable.pattern!r}"
            )
        resolved[variable.name] = value
    if max_bytes is not None:
        sizes = {name: len(value.encode()) for name, value in resolved.items()}
        size = len(content.encode()) + sum(
            sizes[m.group(1)] - len(m.group(0).encode()) for m in PLACEHOLDER.finditer(content)
        )
        if size > max_bytes:
            raise InvalidArgument(
                f"the rendered template would be {size} bytes; the limit is {max_bytes} bytes"
            )
    return PLACEHOLDER.sub(lambda m: resolved[m.group(1)], content)


class Templates:
    def __init__(
        self,
        store: GraphStore,
        writer: Writer,
        create_in: Creator,
        hooks: GraphHooks,
        limits: Limits,
    ) -> None:
        self.store = store
        self.writer = writer
        self.create_in = create_in
        self.hooks = hooks
        self.limits = limits

    def create(
        self,
        *,
        name: str,
        content: str,
        variables: list[TemplateVariable],
        metadata: dict[str, str],
        template_id: bytes | None = None,
    ) -> Node:
        details = TemplateDetails(name=name, variables=tuple(variables))
        self.limits.check(content, metadata)
        self.limits.details(details)
        validate_template(name, content, variables)
        with self.writer.transaction() as tx:
            node_id = template_id or new_id(name_tag(name))
            if tx.id_taken(node_id):
                raise AlreadyExists(f"a node with id {format_id(node_id)} already exists")
            if self.store.template_id(name) is not None:
                raise AlreadyExists(f"a template named {name!r} already exists")
            node = self.create_in.stamped(tx, node_id, None, content, metadata, details)
        return node

    def _find(self, template_id: bytes | None, name: str) -> Node:
        if template_id is None:
            if not name:
                raise InvalidArgument("template_id or name is required")
            found = self.store.template_id(name)
            if found is None:
                raise NotFound(f"template named {name!r} not found")
            template_id = found
        return require_kind(self.store, template_id, NodeKind.TEMPLATE)

    def get(self, *, template_id: bytes | None = None, name: str = "") -> Node:
        template = self._find(template_id, name)
        if self.hooks.watches_reads:
            read = Read("get_template", None, (template.id,), options={"name": name})
            self.hooks.before_read(read)
            self.hooks.after_read(read, 1)
        return template

    def instantiate(
        self,
        *,
        template_id: bytes | None,
        name: str,
        values: dict[str, str],
        session_id: bytes | None,
        prompt: PromptDetails,
        metadata: dict[str, str],
    ) -> tuple[str, Node | None]:
        """Render a template; with a session, also record the text as a prompt there, with
        `prompt`'s model and role."""
        limits = self.limits
        limits.items("variables", values)
        for key, value in values.items():
            limits.text("a variable name", key, limits.max_name_bytes)
            limits.text(f"variable {key!r}", value, limits.max_content_bytes)
        template = self._find(template_id, name)
        variables = template.details_as(TemplateDetails).variables
        content = render_template(template.content, variables, values, limits.max_content_bytes)
        hooks = self.hooks
        call = hooks.before_instantiate_template(
            Instantiation(template, content, session_id, values, metadata)
        )
        spec = None
        if session_id is not None:
            details = replace(prompt, template_id=template.id)
            spec = hooks.before_create_node(
                NewNode(NodeKind.PROMPT, session_id, call.content, call.metadata, details)
            )
            # The text is what the prompt records; the instantiation keeps its own metadata.
            call = replace(call, content=spec.content)
        with self.writer.transaction() as tx:
            current = require_kind(tx, template.id, NodeKind.TEMPLATE)
            counted = current.details_as(TemplateDetails)
            counted = replace(counted, usage_count=counted.usage_count + 1)
            tx.update(current, replace(current, details=counted))
            recorded = self.create_in.node(tx, spec) if spec is not None else None
        hooks.after_instantiate_template(call)
        if recorded is not None:
            hooks.after_create_node(recorded)
        return call.content, recorded
