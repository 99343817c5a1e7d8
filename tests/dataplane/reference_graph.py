"""A reference model of the memory graph in plain Python: dicts of nodes and edges and the rules
of the API, written from the API's documented behaviour and independent of the store.

`test_graph_model` drives `GraphService` and this model with the same random operations and
compares them. Each write method first checks the request (raising `Refused` with the error
class the service must raise, before changing anything), then applies it. The ids and times the
service chose are taken from its answer (`got`): an id must be new, a time must be later than
every earlier one and no later than the clock. When the service refused a request the model
accepts, `got` is None and provisional ids and times stand in, so the model can still finish
and the test reports the divergence.
"""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass, field, replace
from typing import Any

from memorygraph.errors import (
    AlreadyExists,
    FailedPrecondition,
    InvalidArgument,
    NotFound,
    RequestError,
)
from memorygraph.model import (
    AgentDetails,
    Direction,
    Edge,
    EdgeKey,
    EdgeKind,
    NewEdge,
    NewNode,
    NewSession,
    Node,
    NodeKind,
    PromptDetails,
    ResponseDetails,
    SessionDetails,
    SessionState,
    TemplateDetails,
    TemplateVariable,
    TokenUsage,
    ToolInvocationDetails,
)
from memorygraph.store import GraphCounts

__all__ = [
    "VALID_PATTERNS",
    "ReferenceGraph",
    "Refused",
    "Segment",
    "Variable",
    "render_segments",
]

Segment = tuple[str, str, str]
"""("text", literal, "") or ("var", name, padding inside the braces)."""


def render_segments(segments: list[Segment]) -> str:
    return "".join(
        text if kind == "text" else "{{" + pad + text + pad + "}}" for kind, text, pad in segments
    )


VALID_PATTERNS = frozenset({"", "[a-z]+", "[0-9]+"})  # RE2 accepts these; the tests' others not
VARIABLE_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
DETAILS = {
    NodeKind.PROMPT: PromptDetails,
    NodeKind.RESPONSE: ResponseDetails,
    NodeKind.TOOL_INVOCATION: ToolInvocationDetails,
    NodeKind.AGENT: AgentDetails,
}


@dataclass(frozen=True)
class Variable:
    name: str
    required: bool = False
    default_value: str = ""
    pattern: str = ""
    description: str = ""

    def declared(self) -> TemplateVariable:
        return TemplateVariable(
            self.name, self.description, self.required, self.default_value, self.pattern
        )


class Refused(Exception):
    def __init__(self, error: type[RequestError], why: str) -> None:
        super().__init__(f"{error.__name__}: {why}")
        self.error = error


def _text_id(node_id: bytes) -> str:
    return str(uuid.UUID(bytes=node_id))


@dataclass
class ReferenceGraph:
    nodes: dict[bytes, Node] = field(default_factory=dict)  # in creation order
    edges: dict[EdgeKey, Edge] = field(default_factory=dict)
    template_segments: dict[bytes, list[Segment]] = field(default_factory=dict)
    last_time: int = 0
    now: int = 0  # the clock's reading after the request, set by the test
    _provisional: int = 0

    # -- helpers ------------------------------------------------------------------------------

    def stamp(self, observed: int | None) -> int:
        if observed is None:
            return self.now
        assert self.last_time < observed <= self.now, (
            f"time {observed} is not after {self.last_time} and at most {self.now}"
        )
        self.last_time = observed
        return observed

    def new_id(self, explicit: bytes | None, observed: bytes | None) -> bytes:
        if explicit is not None:
            return explicit
        if observed is None:
            self._provisional += 1
            return uuid.UUID(int=self._provisional).bytes
        assert observed not in self.nodes, "the service reused an id"
        assert uuid.UUID(bytes=observed).version == 7, "generated ids are UUIDv7"
        return observed

    @staticmethod
    def check_limits(content: str = "", metadata: dict[str, str] | None = None) -> None:
        if metadata and "" in metadata:
            raise Refused(InvalidArgument, "empty metadata key")
        assert len(content) < 1000  # the tests stay far below the size limits

    def require(self, node_id: bytes, kind: NodeKind | None = None) -> Node:
        node = self.nodes.get(node_id)
        if node is None or (kind is not None and node.kind is not kind):
            raise Refused(NotFound, f"no {kind or 'node'} {_text_id(node_id)}")
        return node

    def writable(self, session_id: bytes) -> Node:
        session = self.require(session_id, NodeKind.SESSION)
        if session.details_as(SessionDetails).state is not SessionState.ACTIVE:
            raise Refused(FailedPrecondition, "session is closed")
        return session

    def newest_prompt(self, session_id: bytes) -> bytes | None:
        prompts = [
            n
            for n in self.nodes.values()
            if n.kind is NodeKind.PROMPT and n.session_id == session_id
        ]
        return max(prompts, key=lambda n: (n.create_time, n.id)).id if prompts else None

    def retotal(self, session_id: bytes) -> None:
        """A session's token totals are the sums over the responses it holds now."""
        session = self.nodes[session_id]
        responses = [
            n
            for n in self.nodes.values()
            if n.kind is NodeKind.RESPONSE and n.session_id == session_id
        ]
        totals = sum(
            (r.details_as(ResponseDetails).token_usage for r in responses), start=TokenUsage()
        )
        details = replace(session.details_as(SessionDetails), token_usage=totals)
        self.nodes[session_id] = replace(session, details=details)

    def touching(self, node_ids: set[bytes]) -> list[EdgeKey]:
        return [k for k in self.edges if k[0] in node_ids or k[2] in node_ids]

    # -- sessions -----------------------------------------------------------------------------

    def create_session(self, spec: NewSession, got: Node | None) -> Node:
        self.check_limits(spec.title, spec.metadata)
        if spec.session_id is not None and spec.session_id in self.nodes:
            raise Refused(AlreadyExists, "id in use")
        node_id = self.new_id(spec.session_id, got.id if got else None)
        at = self.stamp(got.create_time if got else None)
        session = Node(
            node_id,
            NodeKind.SESSION,
            node_id,
            spec.title,
            dict(spec.metadata),
            at,
            at,
            details=SessionDetails(user_id=spec.user_id, agent_id=spec.agent_id, model=spec.model),
        )
        self.nodes[node_id] = session
        return session

    def close_session(self, session_id: bytes, got: Node | None) -> Node:
        session = self.require(session_id, NodeKind.SESSION)
        details = session.details_as(SessionDetails)
        if details.state is SessionState.CLOSED:
            return session
        at = self.stamp(got.update_time if got else None)
        closed = replace(
            session,
            update_time=at,
            details=replace(details, state=SessionState.CLOSED, close_time=at),
        )
        self.nodes[session_id] = closed
        return closed

    def delete_session(self, session_id: bytes) -> tuple[int, int]:
        self.require(session_id, NodeKind.SESSION)
        gone = {nid for nid, n in self.nodes.items() if n.session_id == session_id}
        edges = self.touching(gone)
        for key in edges:
            del self.edges[key]
        for nid in gone:
            del self.nodes[nid]
        return len(gone), len(edges)

    def sessions(self, state: str | None, user_id: str) -> list[Node]:
        found = [
            n
            for n in self.nodes.values()
            if n.kind is NodeKind.SESSION
            and (state is None or n.details_as(SessionDetails).state == state)
            and (not user_id or n.details_as(SessionDetails).user_id == user_id)
        ]
        return sorted(found, key=lambda n: (n.create_time, n.id), reverse=True)

    # -- nodes --------------------------------------------------------------------------------

    def create_node(self, spec: NewNode, got: Node | None) -> Node:
        kind = spec.kind
        details = self._checked_details(spec)
        session_id, links = self._parent_links(spec, details)
        if kind is not NodeKind.AGENT:
            if session_id is None:
                raise Refused(InvalidArgument, "session_id required")
            self.writable(session_id)
            if kind is NodeKind.PROMPT:
                links.append((EdgeKind.BELONGS_TO, session_id))
                previous = self.newest_prompt(session_id)
                if previous is not None:
                    links.append((EdgeKind.FOLLOWS, previous))
            if kind is NodeKind.RESPONSE:
                usage = details.token_usage
                if min(usage.prompt_tokens, usage.completion_tokens, usage.total_tokens) < 0:
                    raise Refused(InvalidArgument, "negative tokens")
                total = usage.total_tokens or usage.prompt_tokens + usage.completion_tokens
                details = replace(details, token_usage=replace(usage, total_tokens=total))
        node_id = self.new_id(spec.node_id, got.id if got else None)
        at = self.stamp(got.create_time if got else None)
        node = Node(
            node_id, kind, session_id, spec.content, dict(spec.metadata), at, at, details=details
        )
        self.nodes[node_id] = node
        for link, target in links:
            self.edges[(node_id, link, target)] = Edge(node_id, target, link, {}, at)
        if kind is NodeKind.RESPONSE and session_id is not None:
            self.retotal(session_id)
        return node

    def _checked_details(self, spec: NewNode) -> Any:
        kind = spec.kind
        if kind in (NodeKind.SESSION, NodeKind.TEMPLATE):
            raise Refused(InvalidArgument, f"{kind} nodes have their own create call")
        details: Any = spec.details if spec.details is not None else DETAILS[kind]()
        if type(details) is not DETAILS[kind]:
            raise Refused(InvalidArgument, "details of another kind")
        self.check_limits(spec.content, spec.metadata)
        if kind in (NodeKind.PROMPT, NodeKind.RESPONSE) and not spec.content.strip():
            raise Refused(InvalidArgument, "content required")
        if kind is NodeKind.TOOL_INVOCATION and not details.tool_name:
            raise Refused(InvalidArgument, "tool_name required")
        if spec.node_id is not None and spec.node_id in self.nodes:
            raise Refused(AlreadyExists, "id in use")
        return details

    def _parent_links(
        self, spec: NewNode, details: Any
    ) -> tuple[bytes | None, list[tuple[EdgeKind, bytes]]]:
        """The node's session (its parent's, when it names one) and its links to its parent
        and template."""
        kind, session_id = spec.kind, spec.session_id
        links: list[tuple[EdgeKind, bytes]] = []
        parent_field = {
            NodeKind.RESPONSE: ("prompt_id", NodeKind.PROMPT, EdgeKind.RESPONDS_TO),
            NodeKind.TOOL_INVOCATION: ("response_id", NodeKind.RESPONSE, EdgeKind.INVOKES),
        }.get(kind)
        if kind is NodeKind.AGENT:
            if session_id is not None:
                raise Refused(InvalidArgument, "agents are global")
        elif parent_field is not None and getattr(details, parent_field[0]) is not None:
            name, parent_kind, link = parent_field
            parent = self.require(getattr(details, name), parent_kind)
            if session_id is not None and parent.session_id != session_id:
                raise Refused(InvalidArgument, "parent in another session")
            session_id = parent.session_id
            links.append((link, parent.id))
        if kind is NodeKind.PROMPT and details.template_id is not None:
            template = self.require(details.template_id, NodeKind.TEMPLATE)
            links.append((EdgeKind.INSTANTIATES, template.id))
        return session_id, links

    def update_node(
        self,
        node_id: bytes,
        segments: list[Segment] | None,
        metadata: dict[str, str] | None,
        got: Node | None,
    ) -> Node:
        content = render_segments(segments) if segments is not None else None
        self.check_limits(content or "", metadata)
        node = self.require(node_id)
        if node.kind is NodeKind.SESSION:
            raise Refused(InvalidArgument, "sessions change through CloseSession")
        if node.session_id is not None:
            self.writable(node.session_id)
        blank_refused = (NodeKind.PROMPT, NodeKind.RESPONSE, NodeKind.TEMPLATE)
        if content is not None and not content.strip() and node.kind in blank_refused:
            raise Refused(InvalidArgument, "content must not be empty")
        if node.kind is NodeKind.TEMPLATE and segments is not None:
            declared = {v.name for v in node.details_as(TemplateDetails).variables}
            if {text for kind, text, _ in segments if kind == "var"} - declared:
                raise Refused(InvalidArgument, "undeclared template variables")
            self.template_segments[node_id] = list(segments)
        at = self.stamp(got.update_time if got else None)
        updated = replace(
            node,
            content=node.content if content is None else content,
            metadata=dict(node.metadata) if metadata is None else dict(metadata),
            update_time=at,
        )
        self.nodes[node_id] = updated
        return updated

    def delete_node(self, node_id: bytes) -> int:
        node = self.require(node_id)
        if node.kind is NodeKind.SESSION:
            raise Refused(FailedPrecondition, "sessions are deleted with DeleteSession")
        edges = self.touching({node_id})
        for key in edges:
            del self.edges[key]
        del self.nodes[node_id]
        self.template_segments.pop(node_id, None)
        if node.kind is NodeKind.RESPONSE and node.session_id is not None:
            self.retotal(node.session_id)
        return len(edges)

    def get_nodes(self, node_ids: list[bytes]) -> tuple[list[Node], list[bytes]]:
        found = [self.nodes[n] for n in node_ids if n in self.nodes]
        return found, [n for n in node_ids if n not in self.nodes]

    # -- edges --------------------------------------------------------------------------------

    def create_edge(self, spec: NewEdge, got: Edge | None) -> Edge:
        self.check_limits(metadata=spec.metadata)
        if spec.source_id == spec.target_id:
            raise Refused(InvalidArgument, "self edge")
        source = self.require(spec.source_id)
        self.require(spec.target_id)
        if source.session_id is not None:
            self.writable(source.session_id)
        key = (spec.source_id, spec.kind, spec.target_id)
        if key in self.edges:
            raise Refused(AlreadyExists, "edge exists")
        at = self.stamp(got.create_time if got else None)
        edge = Edge(spec.source_id, spec.target_id, spec.kind, dict(spec.metadata), at)
        self.edges[key] = edge
        return edge

    def delete_edge(self, key: EdgeKey) -> None:
        if key not in self.edges:
            raise Refused(NotFound, "no such edge")
        del self.edges[key]

    def edges_of(self, node_id: bytes, direction: Direction, kinds: set[EdgeKind]) -> list[Edge]:
        self.require(node_id)
        out = direction in (Direction.OUTGOING, Direction.BOTH)
        into = direction in (Direction.INCOMING, Direction.BOTH)
        return [
            e
            for (s, k, t), e in self.edges.items()
            if (not kinds or k in kinds) and ((out and s == node_id) or (into and t == node_id))
        ]

    def traverse(
        self,
        start_id: bytes,
        kinds: set[EdgeKind],
        direction: Direction,
        max_depth: int,
        max_nodes: int,
    ) -> tuple[dict[bytes, int], set[EdgeKey]]:
        """Every node within the depth limit with its distance, and the edges followed (those
        leaving a node closer than the limit); the node limit is checked by the caller."""
        self.require(start_id)
        for value, cap in ((max_depth, 10), (max_nodes, 10_000)):
            if not 0 <= value <= cap:
                raise Refused(InvalidArgument, "traversal bound out of range")
        limit = max_depth or 3
        distance = {start_id: 0}
        frontier = [start_id]
        followed: set[EdgeKey] = set()
        for depth in range(limit):
            reached: list[bytes] = []
            for node_id in frontier:
                for edge in self.edges_of(node_id, direction, kinds):
                    followed.add(edge.key)
                    other = edge.target_id if edge.source_id == node_id else edge.source_id
                    if other not in distance:
                        distance[other] = depth + 1
                        reached.append(other)
            frontier = reached
        return distance, followed

    # -- templates ----------------------------------------------------------------------------

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

    # -- queries and counters -----------------------------------------------------------------

    def query(
        self,
        session_id: bytes | None,
        kinds: frozenset[NodeKind],
        start: int,
        end: int,
        metadata: tuple[tuple[str, str], ...],
        descending: bool,
    ) -> list[Node]:
        found = [
            n
            for n in self.nodes.values()
            if (
                session_id is None
                or (n.session_id == session_id and n.kind is not NodeKind.SESSION)
            )
            and (not kinds or n.kind in kinds)
            and start <= n.create_time < end
            and all(n.metadata.get(k) == v for k, v in metadata)
        ]
        return sorted(found, key=lambda n: (n.create_time, n.id), reverse=descending)

    def counts(self) -> GraphCounts:
        nodes = dict.fromkeys(NodeKind, 0)
        for node in self.nodes.values():
            nodes[node.kind] += 1
        responses = [n for n in self.nodes.values() if n.kind is NodeKind.RESPONSE]
        return GraphCounts(
            nodes=nodes,
            edges=len(self.edges),
            active_sessions=sum(
                n.kind is NodeKind.SESSION
                and n.details_as(SessionDetails).state is SessionState.ACTIVE
                for n in self.nodes.values()
            ),
            tokens=sum(
                (n.details_as(ResponseDetails).token_usage for n in responses), start=TokenUsage()
            ),
        )
