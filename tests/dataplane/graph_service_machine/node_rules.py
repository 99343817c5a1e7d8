"""The state machine's rules for sessions, turns and the other nodes."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from hypothesis import strategies as st
from hypothesis.stateful import initialize, rule
from memorygraph.model import (
    AgentDetails,
    NewNode,
    NewSession,
    Node,
    NodeKind,
    PromptDetails,
    ResponseDetails,
    TemplateVariable,
    TokenUsage,
    ToolInvocationDetails,
)

from ..reference_graph import ReferenceGraph, Segment, Variable, render_segments
from .machine import EXPLICIT_IDS, MachineBase, _call
from .strategies import content_st, metadata_st, mostly, segments_st


class NodeRules(MachineBase):
    """Sessions created, closed and deleted; prompts, responses, tool invocations and agents
    created (one at a time and in batches), updated, deleted and read."""

    # -- sessions --------------------------------------------------------------------------------

    def _seed_session(self, spec: NewSession) -> None:
        outcome = _call(lambda: self.service.create_session(spec))
        assert self._apply("seed", outcome, lambda m: m.create_session(spec, outcome.got))

    @initialize(sessions=st.integers(1, 3))
    def seed(self, sessions: int) -> None:
        """Start from a few sessions, an agent and a template, so most requests can succeed."""
        for i in range(sessions):
            self._seed_session(NewSession(title=f"seed {i}", user_id=["ann", "bob"][i % 2]))
        first = next(iter(self.model.nodes))
        prompt = NewNode(NodeKind.PROMPT, first, "first question")
        outcome_prompt = _call(lambda: self.service.create_node(prompt))
        assert self._apply(
            "seed", outcome_prompt, lambda m: m.create_node(prompt, outcome_prompt.got)
        )
        agent = NewNode(NodeKind.AGENT, details=AgentDetails(name="helper"))
        outcome_agent = _call(lambda: self.service.create_node(agent))
        assert self._apply("seed", outcome_agent, lambda m: m.create_node(agent, outcome_agent.got))
        variables = [
            Variable("a", required=True),
            Variable("b", default_value="x", pattern="[a-z]+"),
        ]
        segments: list[Segment] = [
            ("text", "Hi ", ""),
            ("var", "a", ""),
            ("text", " ", ""),
            ("var", "b", " "),
        ]
        outcome_template = _call(
            lambda: self.service.templates.create(
                name="greet",
                content=render_segments(segments),
                variables=[
                    TemplateVariable("a", required=True),
                    TemplateVariable("b", default_value="x", pattern="[a-z]+"),
                ],
                metadata={},
            )
        )
        assert self._apply(
            "seed",
            outcome_template,
            lambda m: m.create_template(
                "greet", segments, variables, {}, None, outcome_template.got
            ),
        )

    @rule(
        data=st.data(),
        title=st.sampled_from(["", "chat", "support"]),
        user_id=st.sampled_from(["", "ann", "bob"]),
        metadata=metadata_st,
    )
    def create_session(
        self, data: st.DataObject, title: str, user_id: str, metadata: dict[str, str]
    ) -> None:
        spec = NewSession(self._explicit_id(data), title, user_id, "agent-1", "model-1", metadata)
        outcome = _call(lambda: self.service.create_session(spec))
        expected = self._apply(
            "create_session", outcome, lambda m: m.create_session(spec, outcome.got)
        )
        if expected is not None:
            assert outcome.value == expected

    @rule(data=st.data())
    def close_session(self, data: st.DataObject) -> None:
        session_id = self._pick(data, NodeKind.SESSION)
        outcome = _call(lambda: self.service.close_session(session_id))
        expected = self._apply(
            "close_session", outcome, lambda m: m.close_session(session_id, outcome.got)
        )
        if expected is not None:
            assert outcome.value == expected

    @rule(data=st.data())
    def delete_session(self, data: st.DataObject) -> None:
        session_id = self._pick(data, NodeKind.SESSION)
        outcome = _call(lambda: self.service.delete_session(session_id))
        expected = self._apply("delete_session", outcome, lambda m: m.delete_session(session_id))
        if expected is not None:
            assert outcome.value == expected

    # -- turns and nodes -------------------------------------------------------------------------

    def _create(self, spec: NewNode) -> None:
        outcome = _call(lambda: self.service.create_node(spec))
        expected = self._apply(
            f"create {spec.kind}", outcome, lambda m: m.create_node(spec, outcome.got)
        )
        if expected is not None:
            assert outcome.value == expected

    @rule(
        data=st.data(),
        content=content_st,
        metadata=metadata_st,
        details=mostly(
            [None, PromptDetails(model="m1"), PromptDetails(role="user")], [ResponseDetails()]
        ),
    )
    def add_prompt(
        self, data: st.DataObject, content: str, metadata: dict[str, str], details: Any
    ) -> None:
        session_id = self._pick(data, NodeKind.SESSION)
        self._create(
            NewNode(
                NodeKind.PROMPT, session_id, content, metadata, details, self._explicit_id(data)
            )
        )

    @rule(
        data=st.data(),
        content=content_st,
        tokens=st.tuples(st.integers(0, 50), st.integers(0, 50), mostly([0, 0, 7], [-1])),
    )
    def add_response(self, data: st.DataObject, content: str, tokens: tuple[int, int, int]) -> None:
        prompt_id = self._pick(data, NodeKind.PROMPT) if data.draw(st.integers(0, 5)) else None
        details = ResponseDetails(prompt_id=prompt_id, token_usage=TokenUsage(*tokens))
        session_id = self._maybe(data, NodeKind.SESSION, chance=1 if prompt_id is None else 4)
        self._create(NewNode(NodeKind.RESPONSE, session_id, content, {}, details))

    @rule(data=st.data(), tool_name=mostly(["search", "calc"], [""]))
    def add_tool_invocation(self, data: st.DataObject, tool_name: str) -> None:
        details = ToolInvocationDetails(tool_name=tool_name, arguments='{"q": 1}')
        session_id = None
        if data.draw(st.integers(0, 5)):
            details = replace(details, response_id=self._pick(data, NodeKind.RESPONSE))
            session_id = self._maybe(data, NodeKind.SESSION)
        else:
            session_id = self._pick(data, NodeKind.SESSION)
        self._create(NewNode(NodeKind.TOOL_INVOCATION, session_id, "", {}, details))

    @rule(data=st.data(), name=st.sampled_from(["planner", "coder"]), metadata=metadata_st)
    def create_agent(self, data: st.DataObject, name: str, metadata: dict[str, str]) -> None:
        session_id = self._maybe(data, NodeKind.SESSION, chance=6)
        self._create(
            NewNode(
                NodeKind.AGENT,
                session_id,
                "",
                metadata,
                AgentDetails(name=name),
                self._explicit_id(data),
            )
        )

    @rule(data=st.data(), size=st.integers(1, 3))
    def create_nodes_in_one_batch(self, data: st.DataObject, size: int) -> None:
        specs = []
        for _ in range(size):
            kind = data.draw(st.sampled_from([NodeKind.PROMPT, NodeKind.RESPONSE, NodeKind.AGENT]))
            node_id = data.draw(mostly([None], EXPLICIT_IDS, odds=3))
            content = data.draw(content_st)
            if kind is NodeKind.AGENT:
                specs.append(NewNode(kind, None, content, {}, AgentDetails(name="x"), node_id))
            elif kind is NodeKind.PROMPT:
                specs.append(
                    NewNode(kind, self._pick(data, NodeKind.SESSION), content, {}, None, node_id)
                )
            else:
                # The prompt may be one this batch creates under an explicit id.
                prompt = (
                    data.draw(st.sampled_from(EXPLICIT_IDS))
                    if data.draw(st.booleans())
                    else self._pick(data, NodeKind.PROMPT)
                )
                specs.append(
                    NewNode(
                        kind,
                        None,
                        content,
                        {},
                        ResponseDetails(prompt_id=prompt, token_usage=TokenUsage(0, 2)),
                        node_id,
                    )
                )

        def in_model(m: ReferenceGraph) -> list[Node]:
            got = outcome.got
            return [m.create_node(spec, got[i] if got else None) for i, spec in enumerate(specs)]

        outcome = _call(lambda: self.service.create_nodes(specs))
        expected = self._apply("create_nodes_in_one_batch", outcome, in_model)
        if expected is not None:
            assert outcome.value == expected

    @rule(
        data=st.data(),
        content=st.one_of(
            st.none(),
            mostly([None], [[("text", "  ", "")]], odds=6).flatmap(
                lambda blank: st.just(blank) if blank else segments_st(["a", "b", "c"])
            ),
        ),
        metadata=st.one_of(st.none(), metadata_st),
    )
    def update_node(
        self, data: st.DataObject, content: list[Segment] | None, metadata: dict[str, str] | None
    ) -> None:
        node_id = self._pick(data)
        text = render_segments(content) if content is not None else None
        outcome = _call(lambda: self.service.update_node(node_id, content=text, metadata=metadata))
        expected = self._apply(
            "update_node", outcome, lambda m: m.update_node(node_id, content, metadata, outcome.got)
        )
        if expected is not None:
            assert outcome.value == expected

    @rule(data=st.data())
    def delete_node(self, data: st.DataObject) -> None:
        node_id = self._pick(data, *(kind for kind in NodeKind if kind is not NodeKind.SESSION))
        outcome = _call(lambda: self.service.delete_node(node_id))
        expected = self._apply("delete_node", outcome, lambda m: m.delete_node(node_id))
        if expected is not None:
            assert outcome.value == expected

    @rule(data=st.data())
    def get_nodes(self, data: st.DataObject) -> None:
        ids = [self._pick(data) for _ in range(data.draw(st.integers(0, 4)))]
        assert self.service.get_nodes(ids) == self.model.get_nodes(ids)
