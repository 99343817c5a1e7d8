"""The state machine's rules for templates: created, instantiated and read."""

from __future__ import annotations

from hypothesis import strategies as st
from hypothesis.stateful import rule
from memorygraph.model import NodeKind, PromptDetails, TemplateDetails, TemplateVariable

from ..reference_graph import render_segments
from .machine import MachineBase, _call
from .strategies import metadata_st, mostly, segments_st, template_name_st, variable_st


class TemplateRules(MachineBase):
    """Templates created with their variables, instantiated by id or name, and read."""

    @rule(data=st.data(), name=template_name_st, metadata=metadata_st)
    def create_template(self, data: st.DataObject, name: str, metadata: dict[str, str]) -> None:
        variables = data.draw(st.lists(variable_st, max_size=3, unique_by=lambda v: v.name))
        if variables and data.draw(st.integers(0, 14)) == 0:
            variables.append(variables[0])  # declared twice
        segments = data.draw(segments_st([v.name for v in variables]))
        template_id = self._explicit_id(data)
        outcome = _call(
            lambda: self.service.templates.create(
                name=name,
                content=render_segments(segments),
                variables=[
                    TemplateVariable(v.name, v.description, v.required, v.default_value, v.pattern)
                    for v in variables
                ],
                metadata=metadata,
                template_id=template_id,
            )
        )
        expected = self._apply(
            "create_template",
            outcome,
            lambda m: m.create_template(
                name, segments, variables, metadata, template_id, outcome.got
            ),
        )
        if expected is not None:
            assert outcome.value == expected

    @rule(
        data=st.data(),
        by=mostly(["id", "id", "name"], ["neither"]),
        prompt=st.sampled_from([PromptDetails(), PromptDetails(model="m2", role="user")]),
        metadata=metadata_st,
    )
    def instantiate_template(
        self, data: st.DataObject, by: str, prompt: PromptDetails, metadata: dict[str, str]
    ) -> None:
        template_id = self._pick(data, NodeKind.TEMPLATE) if by == "id" else None
        name = data.draw(template_name_st) if by == "name" else ""
        template = self.model.nodes.get(template_id or b"")
        if template is None and name:
            template = next(
                (
                    n
                    for n in self.model.nodes.values()
                    if n.kind is NodeKind.TEMPLATE and n.details_as(TemplateDetails).name == name
                ),
                None,
            )
        values: dict[str, str] = {}
        declared = (
            template.details_as(TemplateDetails).variables
            if template is not None and template.kind is NodeKind.TEMPLATE
            else ()
        )
        for variable in declared:
            if data.draw(st.integers(0, 3)):
                fits = {"[0-9]+": "42", "[a-z]+": "abc"}.get(variable.pattern, "hello")
                values[variable.name] = data.draw(mostly([fits], ["X", ""], odds=8))
        if data.draw(st.integers(0, 11)) == 0:
            values["z"] = "undeclared"
        session_id = self._maybe(data, NodeKind.SESSION, chance=2)
        outcome = _call(
            lambda: self.service.templates.instantiate(
                template_id=template_id,
                name=name,
                values=values,
                session_id=session_id,
                prompt=prompt,
                metadata=metadata,
            )
        )
        got = outcome.got
        expected = self._apply(
            "instantiate_template",
            outcome,
            lambda m: m.instantiate(
                template_id,
                name,
                values,
                session_id,
                prompt,
                metadata,
                got[1] if got else None,
            ),
        )
        if expected is not None:
            assert outcome.value == expected

    @rule(data=st.data(), by_name=st.booleans())
    def get_template(self, data: st.DataObject, by_name: bool) -> None:
        template_id = None if by_name else self._pick(data, NodeKind.TEMPLATE)
        name = data.draw(template_name_st) if by_name else ""
        outcome = _call(lambda: self.service.templates.get(template_id=template_id, name=name))
        expected = self._apply("get_template", outcome, lambda m: m.get_template(template_id, name))
        if expected is not None:
            assert outcome.value == expected
