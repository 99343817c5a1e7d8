"""Sessions and other nodes in the reference model: created, closed, updated, deleted, read."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from memorygraph.errors import AlreadyExists, FailedPrecondition, InvalidArgument
from memorygraph.model import (
    AgentDetails,
    Edge,
    EdgeKind,
    NewNode,
    NewSession,
    Node,
    NodeKind,
    PromptDetails,
    ResponseDetails,
    SessionDetails,
    SessionState,
    TemplateDetails,
    ToolInvocationDetails,
)

from .state import GraphState, Refused, Segment, render_segments

DETAILS = {
    NodeKind.PROMPT: PromptDetails,
    NodeKind.RESPONSE: ResponseDetails,
    NodeKind.TOOL_INVOCATION: ToolInvocationDetails,
    NodeKind.AGENT: AgentDetails,
}


class NodeOperations(GraphState):
    """Sessions, turns, agents: what the API does to nodes."""

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
        node_id = self.new_id(spec.node_id, got.id if got else None, session_id)
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
