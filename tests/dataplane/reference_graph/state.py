"""The reference model's state, the checks its operations share, the types its callers use."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field, replace

from memorygraph.errors import FailedPrecondition, InvalidArgument, NotFound, RequestError
from memorygraph.model import (
    Edge,
    EdgeKey,
    Node,
    NodeKind,
    ResponseDetails,
    SessionDetails,
    SessionState,
    TemplateVariable,
    TokenUsage,
    id_tag,
)

Segment = tuple[str, str, str]
"""("text", literal, "") or ("var", name, padding inside the braces)."""


def render_segments(segments: list[Segment]) -> str:
    return "".join(
        text if kind == "text" else "{{" + pad + text + pad + "}}" for kind, text, pad in segments
    )


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
class GraphState:
    """Nodes and edges as dicts, the segments of each template, and the clock's readings."""

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

    def new_id(
        self, explicit: bytes | None, observed: bytes | None, session: bytes | None = None
    ) -> bytes:
        """The id of a new node: the caller's, or the one the service made (a fresh UUIDv8
        carrying the shard tag of `session`, the node's session)."""
        if explicit is not None:
            return explicit
        if observed is None:
            self._provisional += 1
            return uuid.UUID(int=self._provisional).bytes
        assert observed not in self.nodes, "the service reused an id"
        assert uuid.UUID(bytes=observed).version == 8, "generated ids are UUIDv8"
        if session is not None:
            assert id_tag(observed) == id_tag(session), "a node carries its session's tag"
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
