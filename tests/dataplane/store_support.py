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
from memorygraph.model.ids import id_tag, name_tag
from memorygraph.store import GraphStore, KeyValueStore, keys
from memorygraph.store.counters import GraphCounts
from memorygraph.store.keys import EDGE_KIND_CODES, NODE_KIND_CODES
from memorygraph.store.records import decode_node

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
    """The entries of `cf`. The keys of a sharded column family are given without their
    shard's number, once it is checked to be the one each entry belongs on: a session's
    shard for everything of a session, a global node's own, a name's for a template name, the
    shard a node's id routes to for its route."""
    entries = dict(kv.scan(cf, *EVERYTHING))
    count = kv.get(keys.CF_META, keys.SHARDS_KEY)
    if cf not in keys.SHARDED_FAMILIES or count is None:
        return entries
    shards = int(count)
    homes = {
        key[2:]: key[:2] for key in kv.scan_keys(keys.CF_NODES, *EVERYTHING)
    }  # where each node is: checked below for the nodes themselves

    def shard_of(raw: bytes) -> bytes:
        return (id_tag(raw) % shards).to_bytes(2)

    def expected(key: bytes, value: bytes) -> bytes:
        rest = key[2:]
        if cf == keys.CF_NODES:
            node = decode_node(rest, value)
            return shard_of(node.session_id or node.id)
        if cf == keys.CF_NAMES:
            return (name_tag(rest[len(b"template/") :].decode()) % shards).to_bytes(2)
        if cf == keys.CF_BY_KIND:
            return shard_of(value or rest[-16:])
        if cf in (keys.CF_EDGES_OUT, keys.CF_EDGES_IN):
            return homes.get(rest[:16], shard_of(rest[:16]))
        if cf == keys.CF_ROUTES:
            assert homes[rest] == value and value != shard_of(rest), "a needless route"
        return shard_of(rest[:16])  # by_session, session_events, routes: by the key's id

    for key, value in entries.items():
        assert key[:2] == expected(key, value), f"{cf} entry {key.hex()} on the wrong shard"
    return {key[2:]: value for key, value in entries.items()}


def _unshard(kv: KeyValueStore) -> None:
    """Rewrite a store of today into the layout before shards (schema 4): no shard numbers in
    front of the keys, no routes, no shard count."""
    ops: list[tuple[str, bytes, bytes | None]] = []
    for cf in keys.SHARDED_FAMILIES:
        for key, value in kv.scan(cf, *EVERYTHING):
            ops.append((cf, key, None))
            if cf != keys.CF_ROUTES:
                ops.append((cf, key[2:], value))
    ops.append((keys.CF_META, keys.SHARDS_KEY, None))
    ops.append((keys.CF_META, keys.SCHEMA_VERSION_KEY, b"4"))
    kv.write(ops, sync=True)


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
