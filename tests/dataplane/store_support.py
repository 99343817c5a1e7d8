"""Helpers of the storage contract tests: engines, raw column families, kind bytes, counts."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from memorygraph.graph.service import GraphService
from memorygraph.model import (
    AgentDetails,
    EdgeKind,
    NewEdge,
    NewNode,
    NewSession,
    NodeKind,
    ResponseDetails,
    TokenUsage,
    ToolInvocationDetails,
)
from memorygraph.store import GraphStore, KeyValueStore
from memorygraph.store.counters import GraphCounts
from memorygraph.store.keys import EDGE_KIND_CODES, NODE_KIND_CODES

EVERYTHING = (b"", b"\xff" * 64)  # [start, end) covering every key the tests write


@dataclass
class Engine:
    """One storage engine under test; `reopen` gives a fresh handle on the same data, or None
    when the engine keeps nothing across a close."""

    name: str
    open: Callable[[], KeyValueStore]
    persistent: bool


def _all(kv: KeyValueStore, cf: str, *, reverse: bool = False) -> list[tuple[bytes, bytes]]:
    return list(kv.scan(cf, *EVERYTHING, reverse=reverse))


def _raw(kv: KeyValueStore, cf: str) -> dict[bytes, bytes]:
    return dict(kv.scan(cf, *EVERYTHING))


def _kind(kind: NodeKind) -> bytes:
    return bytes([NODE_KIND_CODES[kind]])


def _ekind(kind: EdgeKind) -> bytes:
    return bytes([EDGE_KIND_CODES[kind]])


def _counts(
    *, edges: int = 0, active: int = 0, tokens: TokenUsage = TokenUsage(), **nodes: int
) -> GraphCounts:
    """GraphCounts with `nodes` given by kind name (prompt=1, ...), every other kind 0."""
    return GraphCounts(
        nodes={kind: nodes.get(kind.value, 0) for kind in NodeKind},
        edges=edges,
        active_sessions=active,
        tokens=tokens,
    )


def _populated(kv: KeyValueStore) -> tuple[GraphService, dict[str, bytes]]:
    service = GraphService(GraphStore(kv))
    keep = service.create_session(NewSession(title="keep"))
    agent = service.create_node(NewNode(NodeKind.AGENT, details=AgentDetails(name="a")))
    session = service.create_session(NewSession(title="doomed"))
    prompt = service.create_node(NewNode(NodeKind.PROMPT, session.id, "hi"))
    second = service.create_node(NewNode(NodeKind.PROMPT, session.id, "again"))
    response = service.create_node(
        NewNode(
            NodeKind.RESPONSE,
            content="yo",
            details=ResponseDetails(prompt_id=prompt.id, token_usage=TokenUsage(2, 3)),
        )
    )
    tool = service.create_node(
        NewNode(
            NodeKind.TOOL_INVOCATION,
            details=ToolInvocationDetails(response_id=response.id, tool_name="t"),
        )
    )
    kept_prompt = service.create_node(NewNode(NodeKind.PROMPT, keep.id, "other"))
    service.create_edge(NewEdge(session.id, agent.id, EdgeKind.HANDLED_BY))
    service.create_edge(NewEdge(kept_prompt.id, response.id, EdgeKind.REFERENCES))
    service.create_edge(NewEdge(agent.id, second.id, EdgeKind.REFERENCES))
    ids = {
        "keep": keep.id,
        "agent": agent.id,
        "session": session.id,
        "prompt": prompt.id,
        "second": second.id,
        "response": response.id,
        "tool": tool.id,
        "kept_prompt": kept_prompt.id,
    }
    return service, ids
