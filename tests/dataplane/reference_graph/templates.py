"""Templates in the reference model: created, read by id or name, instantiated."""

from __future__ import annotations

import re
from dataclasses import replace

from memorygraph.errors import AlreadyExists, InvalidArgument, NotFound
from memorygraph.model import NewNode, Node, NodeKind, PromptDetails, TemplateDetails

from .nodes import NodeOperations
from .state import Refused, Segment, Variable, render_segments

VALID_PATTERNS = frozenset({"", "[a-z]+", "[0-9]+"})  # RE2 accepts these; the tests' others not
VARIABLE_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


class TemplateOperations(NodeOperations):
    """Templates, whose instances are prompts (hence nodes)."""

    def create_template(
        self,
        name: str,
        segments: list[Segment],
        variables: list[Variable],
        metadata: dict[str, str],
        template_id: bytes | None,
        got: Node | None,
    ) -> Node:
        content = render_segments(segments)
        if not name.strip() or len(name) > 200 or not content.strip():
            raise Refused(InvalidArgument, "bad name or empty content")
        seen: set[str] = set()
        for v in variables:
            if not VARIABLE_NAME.fullmatch(v.name) or v.name in seen:
                raise Refused(InvalidArgument, f"bad or repeated variable {v.name!r}")
            seen.add(v.name)
            if v.pattern and v.pattern not in VALID_PATTERNS:
                raise Refused(InvalidArgument, f"bad pattern {v.pattern!r}")
            if v.pattern and v.default_value and not re.fullmatch(v.pattern, v.default_value):
                raise Refused(InvalidArgument, "default does not match its pattern")
        if {text for kind, text, _ in segments if kind == "var"} - seen:
            raise Refused(InvalidArgument, "undeclared template variables")
        self.check_limits(content, metadata)
        if template_id is not None and template_id in self.nodes:
            raise Refused(AlreadyExists, "id in use")
        if any(
            n.kind is NodeKind.TEMPLATE and n.details_as(TemplateDetails).name == name
            for n in self.nodes.values()
        ):
            raise Refused(AlreadyExists, "name in use")
        node_id = self.new_id(template_id, got.id if got else None)
        at = self.stamp(got.create_time if got else None)
        template = Node(
            node_id,
            NodeKind.TEMPLATE,
            None,
            content,
            dict(metadata),
            at,
            at,
            details=TemplateDetails(name, tuple(v.declared() for v in variables)),
        )
        self.nodes[node_id] = template
        self.template_segments[node_id] = list(segments)
        return template

    def get_template(self, template_id: bytes | None, name: str) -> Node:
        if template_id is None:
            if not name:
                raise Refused(InvalidArgument, "template_id or name required")
            named = [
                n
                for n in self.nodes.values()
                if n.kind is NodeKind.TEMPLATE and n.details_as(TemplateDetails).name == name
            ]
            if not named:
                raise Refused(NotFound, "no template by that name")
            template_id = named[0].id
        return self.require(template_id, NodeKind.TEMPLATE)

    def instantiate(
        self,
        template_id: bytes | None,
        name: str,
        values: dict[str, str],
        session_id: bytes | None,
        prompt: PromptDetails,
        metadata: dict[str, str],
        got: Node | None,
    ) -> tuple[str, Node | None]:
        template = self.get_template(template_id, name)
        declared_as = template.details_as(TemplateDetails)
        variables = [
            Variable(v.name, v.required, v.default_value, v.pattern, v.description)
            for v in declared_as.variables
        ]
        declared = {v.name: v for v in variables}
        if set(values) - set(declared):
            raise Refused(InvalidArgument, "unknown variables")
        if any(v.required and v.name not in values and not v.default_value for v in variables):
            raise Refused(InvalidArgument, "missing required variables")
        for v in variables:
            if v.pattern and v.name in values and not re.fullmatch(v.pattern, values[v.name]):
                raise Refused(InvalidArgument, "value does not match its pattern")
        content = "".join(
            text if kind == "text" else values.get(text, declared[text].default_value)
            for kind, text, _ in self.template_segments[template.id]
        )
        counted = replace(declared_as, usage_count=declared_as.usage_count + 1)
        self.nodes[template.id] = replace(template, details=counted)
        recorded = None
        if session_id is not None:
            spec = NewNode(
                NodeKind.PROMPT,
                session_id,
                content,
                metadata,
                replace(prompt, template_id=template.id),
            )
            recorded = self.create_node(spec, got)
        return content, recorded
