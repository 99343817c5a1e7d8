"""The graph layout on both engines: records, index entries, counters and scans, byte by byte."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, replace
from pathlib import Path

from memorygraph.codec.nodes import node_message
from memorygraph.model import (
    Direction,
    Edge,
    EdgeKind,
    Node,
    NodeKind,
    ResponseDetails,
    SessionDetails,
    SessionState,
    TokenUsage,
    details_from_fields,
)
from memorygraph.store import GraphStore, KeyValueStore, StoreChanges
from memorygraph.store.counters import Counters, GraphCounts
from memorygraph.store.keys import SCHEMA_VERSION
from memorygraph.store.rocks import RocksStore
from memorygraph.v1 import graph_pb2 as pb

from .store_support import _counts, _ekind, _kind, _raw

T0 = 1_700_000_000_000_000


def _id(n: int) -> bytes:
    return uuid.UUID(int=(0x0190 << 112) | n).bytes


def _t(n: int) -> bytes:
    return (T0 + n).to_bytes(8)


def _session(n: int, at: int, *, state: SessionState = SessionState.ACTIVE) -> Node:
    sid = _id(n)
    return Node(
        sid,
        NodeKind.SESSION,
        sid,
        f"session {n}",
        {},
        T0 + at,
        T0 + at,
        details=SessionDetails(state=state, user_id="u"),
    )


def _member(n: int, kind: NodeKind, session: Node, at: int, **fields: object) -> Node:
    """A node of `session`; `fields` are its details in their plain-data form."""
    details = details_from_fields(kind, fields)
    return Node(
        _id(n), kind, session.id, f"{kind} {n}", {"n": str(n)}, T0 + at, T0 + at, details=details
    )


def _global(n: int, kind: NodeKind, at: int, **fields: object) -> Node:
    details = details_from_fields(kind, fields)
    return Node(_id(n), kind, None, f"{kind} {n}", {}, T0 + at, T0 + at, details=details)


def _edge(source: Node, kind: EdgeKind, target: Node, at: int = 0) -> Edge:
    return Edge(source.id, target.id, kind, {"why": "test"}, T0 + at)


def _framed(node: Node) -> bytes:
    """A session index value: the node's record as one entry of a QueryBatch (how the index
    holds it)."""
    return pb.QueryBatch(nodes=[node_message(node)]).SerializeToString(deterministic=True)


def _persisted(kv: KeyValueStore) -> GraphCounts:
    """The counts as the store keeps them on disk."""
    return Counters(kv).snapshot()


@dataclass
class Fixture:
    """A small graph: one session with a prompt, a response (tokens) and a tool invocation, plus
    a global agent and template, and edges inside and across the session."""

    session: Node
    prompt: Node
    response: Node
    tool: Node
    agent: Node
    template: Node
    edges: list[Edge]

    @property
    def members(self) -> list[Node]:
        return [self.prompt, self.response, self.tool]


def _fixture() -> Fixture:
    session = _session(1, 1)
    prompt = _member(2, NodeKind.PROMPT, session, 2)
    response = _member(
        3, NodeKind.RESPONSE, session, 3, prompt_tokens=3, completion_tokens=4, total_tokens=7
    )
    tool = _member(4, NodeKind.TOOL_INVOCATION, session, 4, tool_name="search")
    agent = _global(5, NodeKind.AGENT, 5, name="helper")
    template = _global(6, NodeKind.TEMPLATE, 6, name="greeting", variables=[], usage_count=0)
    edges = [
        _edge(prompt, EdgeKind.BELONGS_TO, session),
        _edge(response, EdgeKind.RESPONDS_TO, prompt),
        _edge(tool, EdgeKind.INVOKES, response),
        _edge(session, EdgeKind.HANDLED_BY, agent),
        _edge(prompt, EdgeKind.INSTANTIATES, template),
    ]
    return Fixture(session, prompt, response, tool, agent, template, edges)


def _commit_fixture(store: GraphStore) -> Fixture:
    fx = _fixture()
    store.commit(
        StoreChanges(
            created=[fx.session, *fx.members, fx.agent, fx.template], edges_created=fx.edges
        ),
        sync=True,
    )
    return fx


def test_a_new_store_has_every_counter_at_zero(kv: KeyValueStore) -> None:
    assert GraphStore(kv).counts() == _counts()


def test_created_nodes_get_their_record_and_every_index_entry(kv: KeyValueStore) -> None:
    store = GraphStore(kv)
    fx = _commit_fixture(store)
    s = fx.session.id
    everything = [fx.session, *fx.members, fx.agent, fx.template]
    assert set(_raw(kv, "nodes")) == {n.id for n in everything}
    assert _raw(kv, "by_session") == {
        s + _t(n.create_time - T0) + n.id + _kind(n.kind): _framed(n) for n in fx.members
    }
    assert _raw(kv, "by_kind") == {
        _kind(n.kind) + _t(n.create_time - T0) + n.id: n.session_id or b"" for n in everything
    }
    assert _raw(kv, "names") == {b"template/greeting": fx.template.id}
    for node in everything:
        assert store.get_node(node.id) == node


def test_created_edges_get_an_outgoing_and_an_incoming_entry(kv: KeyValueStore) -> None:
    store = GraphStore(kv)
    fx = _commit_fixture(store)
    assert set(_raw(kv, "edges_out")) == {
        e.source_id + _ekind(e.kind) + e.target_id for e in fx.edges
    }
    assert _raw(kv, "edges_in") == {
        e.target_id + _ekind(e.kind) + e.source_id: b"" for e in fx.edges
    }
    for edge in fx.edges:
        assert store.get_edge(edge.key) == edge


def test_commit_maintains_every_counter_in_memory_and_on_disk(kv: KeyValueStore) -> None:
    store = GraphStore(kv)
    _commit_fixture(store)
    expected = _counts(
        edges=5,
        active=1,
        tokens=TokenUsage(3, 4, 7),
        session=1,
        prompt=1,
        response=1,
        tool_invocation=1,
        agent=1,
        template=1,
    )
    assert store.counts() == expected
    assert _persisted(kv) == expected
    assert GraphStore(kv).counts() == expected


def test_update_rewrites_the_record_and_moves_counters_and_only_the_record_in_the_index(
    kv: KeyValueStore,
) -> None:
    store = GraphStore(kv)
    fx = _commit_fixture(store)
    indexes = {cf: _raw(kv, cf) for cf in ("by_session", "by_kind", "edges_out", "names")}
    closed = replace(
        fx.session,
        details=replace(fx.session.details_as(SessionDetails), state=SessionState.CLOSED),
    )
    bigger = replace(
        fx.response,
        content="changed",
        details=replace(fx.response.details_as(ResponseDetails), token_usage=TokenUsage(10, 4, 14)),
    )
    store.commit(StoreChanges(updated=[(fx.session, closed), (fx.response, bigger)]), sync=True)
    assert store.get_node(fx.session.id) == closed
    assert store.get_node(fx.response.id) == bigger
    entry = fx.session.id + _t(3) + fx.response.id + _kind(NodeKind.RESPONSE)
    indexes["by_session"][entry] = _framed(bigger)
    assert {cf: _raw(kv, cf) for cf in indexes} == indexes
    counts = store.counts()
    assert counts.active_sessions == 0
    assert counts.tokens == TokenUsage(10, 4, 14)
    assert counts.sessions == 1
    assert GraphStore(kv).counts() == counts


def test_deleting_nodes_and_edges_leaves_no_record_index_entry_or_count(
    kv: KeyValueStore,
) -> None:
    store = GraphStore(kv)
    fx = _commit_fixture(store)
    store.commit(StoreChanges(deleted=[fx.session, *fx.members], edges_deleted=fx.edges), sync=True)
    assert set(_raw(kv, "nodes")) == {fx.agent.id, fx.template.id}
    assert _raw(kv, "by_session") == {}
    assert set(_raw(kv, "by_kind")) == {
        _kind(n.kind) + _t(n.create_time - T0) + n.id for n in (fx.agent, fx.template)
    }
    assert _raw(kv, "edges_out") == {}
    assert _raw(kv, "edges_in") == {}
    assert _raw(kv, "names") == {b"template/greeting": fx.template.id}
    expected = _counts(agent=1, template=1)
    assert store.counts() == expected
    assert _persisted(kv) == expected


def test_deleting_a_template_frees_its_name(kv: KeyValueStore) -> None:
    store = GraphStore(kv)
    fx = _commit_fixture(store)
    assert store.template_id("greeting") == fx.template.id
    store.commit(StoreChanges(deleted=[fx.template], edges_deleted=[fx.edges[4]]), sync=True)
    assert store.template_id("greeting") is None
    assert _raw(kv, "names") == {}


def test_an_edge_reached_from_both_ends_is_deleted_and_counted_once(kv: KeyValueStore) -> None:
    store = GraphStore(kv)
    fx = _commit_fixture(store)
    twice = [fx.edges[0], replace(fx.edges[0])]  # equal, but a different object
    store.commit(StoreChanges(edges_deleted=twice), sync=True)
    assert store.counts().edges == 4
    assert _persisted(kv).edges == 4
    assert store.get_edge(fx.edges[0].key) is None


def test_counters_and_records_survive_a_reopen_of_the_rocks_store(tmp_path: Path) -> None:
    store = GraphStore(RocksStore(tmp_path / "db"))
    fx = _commit_fixture(store)
    store.commit(StoreChanges(deleted=[fx.tool], edges_deleted=[fx.edges[2]]), sync=False)
    counts, sequence = store.counts(), store.events.last_sequence
    store.close()
    reopened = GraphStore(RocksStore(tmp_path / "db"))
    try:
        assert reopened.counts() == counts
        assert counts.nodes[NodeKind.TOOL_INVOCATION] == 0 and counts.edges == 4
        assert reopened.events.last_sequence == sequence
        assert reopened.schema_version == SCHEMA_VERSION
        assert reopened.get_node(fx.response.id) == fx.response
        assert reopened.get_node(fx.tool.id) is None
    finally:
        reopened.close()


def test_scan_session_lists_members_by_create_time_both_ways(kv: KeyValueStore) -> None:
    store = GraphStore(kv)
    s1, s2 = _session(1, 0), _session(2, 1)
    # Created out of time order, and interleaved with another session's nodes.
    members = [_member(10 + i, NodeKind.PROMPT, s1, at) for i, at in enumerate((5, 2, 9, 7))]
    others = [_member(20 + i, NodeKind.RESPONSE, s2, at) for i, at in enumerate((3, 6))]
    store.commit(StoreChanges(created=[s1, s2, *members, *others]), sync=False)
    by_time = sorted(members, key=lambda n: n.create_time)
    assert [(t, nid, kind) for t, nid, kind in store.scan_session(s1.id)] == [
        (n.create_time, n.id, NodeKind.PROMPT) for n in by_time
    ]
    assert [nid for _, nid, _ in store.scan_session(s1.id, reverse=True)] == [
        n.id for n in reversed(by_time)
    ]
    assert [nid for _, nid, _ in store.scan_session(s1.id, T0 + 5, T0 + 9)] == [
        members[0].id,
        members[3].id,
    ]
    assert [nid for _, nid, _ in store.scan_session(s1.id, T0 + 5, T0 + 9, reverse=True)] == [
        members[3].id,
        members[0].id,
    ]
    assert [nid for _, nid, _ in store.scan_session(s2.id)] == [n.id for n in others]


def test_scan_kind_lists_a_kind_by_create_time_with_its_session(kv: KeyValueStore) -> None:
    store = GraphStore(kv)
    s1, s2 = _session(1, 4), _session(2, 1)
    prompts = [_member(10, NodeKind.PROMPT, s1, 8), _member(11, NodeKind.PROMPT, s2, 3)]
    agent = _global(12, NodeKind.AGENT, 6)
    store.commit(StoreChanges(created=[s1, s2, *prompts, agent]), sync=False)
    assert list(store.scan_kind(NodeKind.SESSION)) == [
        (T0 + 1, s2.id, s2.id),
        (T0 + 4, s1.id, s1.id),
    ]
    assert list(store.scan_kind(NodeKind.PROMPT, reverse=True)) == [
        (T0 + 8, prompts[0].id, s1.id),
        (T0 + 3, prompts[1].id, s2.id),
    ]
    assert list(store.scan_kind(NodeKind.PROMPT, T0 + 4)) == [(T0 + 8, prompts[0].id, s1.id)]
    assert list(store.scan_kind(NodeKind.AGENT)) == [(T0 + 6, agent.id, None)]
    assert list(store.scan_kind(NodeKind.TEMPLATE)) == []


def test_edges_are_found_by_direction_and_kind(kv: KeyValueStore) -> None:
    store = GraphStore(kv)
    fx = _commit_fixture(store)
    p = fx.prompt.id

    def keys_of(direction: Direction, kinds: tuple[EdgeKind, ...] = ()) -> set[object]:
        found = [e.key for e in store.edges(p, direction, kinds)]
        assert len(found) == len(set(found))
        return set(found)

    outgoing = {fx.edges[0].key, fx.edges[4].key}
    incoming = {fx.edges[1].key}
    assert keys_of(Direction.OUTGOING) == outgoing
    assert keys_of(Direction.INCOMING) == incoming
    assert keys_of(Direction.BOTH) == outgoing | incoming
    assert keys_of(Direction.BOTH, (EdgeKind.RESPONDS_TO,)) == incoming
    assert keys_of(Direction.OUTGOING, (EdgeKind.RESPONDS_TO,)) == set()
    both = [e.key for e in store.edges(p, Direction.BOTH)]
    assert set(both[:2]) == outgoing  # outgoing edges come first
