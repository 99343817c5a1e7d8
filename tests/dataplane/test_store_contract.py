"""The storage contract, run on both engines (in-memory and RocksDB).

Two levels: the `KeyValueStore` protocol itself (ordering, bounds, reverse scans, atomic
batches, close), and the graph layout `GraphStore` builds on it (records, every index entry,
counters, schema version), checked by reading the raw column families through the engine.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from memorygraph.codec.nodes import node_message
from memorygraph.graph.service import GraphService
from memorygraph.model import (
    AgentDetails,
    Direction,
    Edge,
    EdgeKind,
    NewEdge,
    NewNode,
    NewSession,
    Node,
    NodeKind,
    ResponseDetails,
    SessionDetails,
    SessionState,
    TokenUsage,
    ToolInvocationDetails,
    details_fields,
    details_from_fields,
)
from memorygraph.store import GraphStore, KeyValueStore, MemoryStore, StoreChanges
from memorygraph.store.counters import Counters, GraphCounts
from memorygraph.store.graph_store import IncompatibleSchema
from memorygraph.store.keys import (
    COLUMN_FAMILIES,
    EDGE_KIND_CODES,
    NODE_KIND_CODES,
    SCHEMA_VERSION,
)
from memorygraph.store.kv import Op
from memorygraph.store.records import decode_event, decode_legacy_node, decode_node, encode_node
from memorygraph.store.rocks import RocksStore
from memorygraph.v1 import graph_pb2 as pb

CF = "nodes"
OTHER_CF = "meta"
EVERYTHING = (b"", b"\xff" * 64)  # [start, end) covering every key the tests write


@dataclass
class Engine:
    """One storage engine under test; `reopen` gives a fresh handle on the same data, or None
    when the engine keeps nothing across a close."""

    name: str
    open: Callable[[], KeyValueStore]
    persistent: bool


def _engine(name: str, path: Path) -> Engine:
    if name == "rocks":
        return Engine(name, lambda: RocksStore(path / "db"), persistent=True)
    return Engine(name, MemoryStore, persistent=False)


@pytest.fixture(params=["memory", "rocks"])
def engine(request: pytest.FixtureRequest, tmp_path: Path) -> Engine:
    return _engine(request.param, tmp_path)


@pytest.fixture
def kv(engine: Engine) -> Iterator[KeyValueStore]:
    store = engine.open()
    yield store
    store.close()


def _all(kv: KeyValueStore, cf: str, *, reverse: bool = False) -> list[tuple[bytes, bytes]]:
    return list(kv.scan(cf, *EVERYTHING, reverse=reverse))


def _keys(
    kv: KeyValueStore, cf: str, start: bytes, end: bytes, *, reverse: bool = False
) -> list[bytes]:
    return [k for k, _ in kv.scan(cf, start, end, reverse=reverse)]


# -- the key-value protocol ------------------------------------------------------------------


def test_get_returns_none_for_a_missing_key_and_the_value_once_written(kv: KeyValueStore) -> None:
    assert kv.get(CF, b"a") is None
    kv.write([(CF, b"a", b"1")], sync=True)
    assert kv.get(CF, b"a") == b"1"
    assert kv.get(CF, b"a\x00") is None


def test_empty_value_is_stored_and_differs_from_a_missing_key(kv: KeyValueStore) -> None:
    kv.write([(CF, b"k", b"")], sync=False)
    assert kv.get(CF, b"k") == b""
    assert kv.multi_get(CF, [b"k", b"j"]) == [b"", None]
    assert _all(kv, CF) == [(b"k", b"")]


def test_overwrite_replaces_the_value_without_a_second_entry(kv: KeyValueStore) -> None:
    kv.write([(CF, b"k", b"old")], sync=False)
    kv.write([(CF, b"k", b"new")], sync=False)
    assert kv.get(CF, b"k") == b"new"
    assert _all(kv, CF) == [(b"k", b"new")]


def test_scan_returns_keys_in_byte_order_whatever_the_write_order(kv: KeyValueStore) -> None:
    keys = [b"b", b"a\xff", b"a", b"\x00", b"ab", b"a\x00", b"\xff\xff", b"B", b"aa"]
    kv.write([(CF, k, k[::-1]) for k in keys], sync=False)
    assert _all(kv, CF) == [(k, k[::-1]) for k in sorted(keys)]
    assert _all(kv, CF, reverse=True) == [(k, k[::-1]) for k in sorted(keys, reverse=True)]


def test_scan_keys_lists_what_scan_lists_without_the_values(kv: KeyValueStore) -> None:
    kv.write([(CF, bytes([i]) * (i % 3 + 1), b"v" * i) for i in range(40)], sync=False)
    for start, end in (EVERYTHING, (b"\x03", b"\x20"), (b"\x05\x00", b"\x05\x05")):
        for reverse in (False, True):
            expected = [k for k, _ in kv.scan(CF, start, end, reverse=reverse)]
            assert list(kv.scan_keys(CF, start, end, reverse=reverse)) == expected


def test_scan_chunks_lists_what_scan_lists_a_list_at_a_time(kv: KeyValueStore) -> None:
    kv.write([(CF, i.to_bytes(2), b"v") for i in range(3000)], sync=False)
    for start, end in (EVERYTHING, (b"\x00\x05", b"\x0a\x00")):
        for reverse in (False, True):
            chunks = list(kv.scan_chunks(CF, start, end, reverse=reverse, first=3))
            assert len(chunks[0]) == 3 and all(chunks)
            flat = [pair for chunk in chunks for pair in chunk]
            assert flat == list(kv.scan(CF, start, end, reverse=reverse))
    assert list(kv.scan_chunks(CF, b"\xff", b"\xff\xff")) == []


def test_scan_includes_start_and_excludes_end(kv: KeyValueStore) -> None:
    kv.write([(CF, bytes([i]), b"v") for i in range(10)], sync=False)
    assert _keys(kv, CF, b"\x03", b"\x06") == [b"\x03", b"\x04", b"\x05"]
    assert _keys(kv, CF, b"\x03", b"\x06", reverse=True) == [b"\x05", b"\x04", b"\x03"]
    # Bounds need not be keys that exist.
    assert _keys(kv, CF, b"\x02\x00", b"\x04\x00") == [b"\x03", b"\x04"]
    assert _keys(kv, CF, b"\x02\x00", b"\x04\x00", reverse=True) == [b"\x04", b"\x03"]


def test_scan_of_an_empty_or_inverted_range_yields_nothing(kv: KeyValueStore) -> None:
    kv.write([(CF, bytes([i]), b"v") for i in range(5)], sync=False)
    for reverse in (False, True):
        assert _keys(kv, CF, b"\x02", b"\x02", reverse=reverse) == []
        assert _keys(kv, CF, b"\x04", b"\x01", reverse=reverse) == []
        assert _keys(kv, CF, b"\x09", b"\x0a", reverse=reverse) == []


def test_long_scans_are_complete_and_ordered_both_ways(kv: KeyValueStore) -> None:
    # More keys than any internal read chunk, so continuation between chunks is exercised.
    keys = [i.to_bytes(2) for i in range(0, 6000, 2)]
    kv.write([(CF, k, b"x") for k in keys], sync=False)
    assert _keys(kv, CF, *EVERYTHING) == keys
    assert _keys(kv, CF, *EVERYTHING, reverse=True) == keys[::-1]
    lower, upper = (1001).to_bytes(2), (4001).to_bytes(2)
    inside = [k for k in keys if lower <= k < upper]
    assert _keys(kv, CF, lower, upper) == inside
    assert _keys(kv, CF, lower, upper, reverse=True) == inside[::-1]


def test_a_scan_can_stop_early(kv: KeyValueStore) -> None:
    kv.write([(CF, i.to_bytes(2), b"x") for i in range(100)], sync=False)
    scan = kv.scan(CF, *EVERYTHING, reverse=True)
    assert [next(scan)[0] for _ in range(3)] == [
        (99).to_bytes(2),
        (98).to_bytes(2),
        (97).to_bytes(2),
    ]


def test_column_families_are_independent_key_spaces(kv: KeyValueStore) -> None:
    kv.write([(cf, b"same", cf.encode()) for cf in COLUMN_FAMILIES], sync=False)
    for cf in COLUMN_FAMILIES:
        assert _all(kv, cf) == [(b"same", cf.encode())]
    kv.write([(CF, b"same", None)], sync=False)
    assert kv.get(CF, b"same") is None
    assert kv.get(OTHER_CF, b"same") == OTHER_CF.encode()


def test_multi_get_answers_in_request_order_with_none_for_missing(kv: KeyValueStore) -> None:
    kv.write([(CF, b"a", b"1"), (CF, b"c", b"3")], sync=False)
    assert kv.multi_get(CF, [b"c", b"b", b"a", b"c"]) == [b"3", None, b"1", b"3"]
    assert kv.multi_get(CF, []) == []
    assert kv.multi_get(OTHER_CF, [b"a"]) == [None]


def test_a_batch_applies_puts_and_deletes_together(kv: KeyValueStore) -> None:
    kv.write([(CF, b"a", b"1"), (CF, b"b", b"2")], sync=True)
    kv.write(
        [(CF, b"a", None), (CF, b"c", b"3"), (OTHER_CF, b"x", b"y"), (CF, b"missing", None)],
        sync=True,
    )
    assert _all(kv, CF) == [(b"b", b"2"), (b"c", b"3")]
    assert _all(kv, OTHER_CF) == [(b"x", b"y")]


def test_deleting_a_missing_key_is_not_an_error(kv: KeyValueStore) -> None:
    kv.write([(CF, b"never", None)], sync=False)
    assert _all(kv, CF) == []


def test_later_ops_on_the_same_key_win_within_a_batch(kv: KeyValueStore) -> None:
    kv.write([(CF, b"k", b"1"), (CF, b"k", None)], sync=False)
    assert kv.get(CF, b"k") is None
    kv.write([(CF, b"k", None), (CF, b"k", b"2"), (CF, b"k", b"3")], sync=False)
    assert _all(kv, CF) == [(b"k", b"3")]


def test_a_batch_naming_an_unknown_column_family_applies_nothing(kv: KeyValueStore) -> None:
    kv.write([(CF, b"keep", b"1")], sync=False)
    with pytest.raises(KeyError):
        kv.write([(CF, b"new", b"1"), (CF, b"keep", None), ("no_such_cf", b"k", b"v")], sync=True)
    assert _all(kv, CF) == [(b"keep", b"1")]


def test_an_empty_batch_changes_nothing(kv: KeyValueStore) -> None:
    kv.write([(CF, b"a", b"1")], sync=False)
    kv.write([], sync=True)
    assert _all(kv, CF) == [(b"a", b"1")]


def test_delete_range_removes_exactly_the_keys_in_range(kv: KeyValueStore) -> None:
    kv.write([(CF, bytes([i]), b"v") for i in range(10)], sync=False)
    kv.write([(OTHER_CF, bytes([i]), b"v") for i in range(10)], sync=False)
    kv.delete_range(CF, b"\x02", b"\x07")
    assert _keys(kv, CF, *EVERYTHING) == [bytes([i]) for i in (0, 1, 7, 8, 9)]
    assert _keys(kv, CF, *EVERYTHING, reverse=True) == [bytes([i]) for i in (9, 8, 7, 1, 0)]
    assert kv.get(CF, b"\x04") is None
    assert len(_all(kv, OTHER_CF)) == 10
    kv.write([(CF, b"\x04", b"back")], sync=False)
    assert kv.get(CF, b"\x04") == b"back"


def test_sync_wal_keeps_every_write_readable(kv: KeyValueStore) -> None:
    kv.write([(CF, b"a", b"1")], sync=False)
    kv.sync_wal()
    assert kv.get(CF, b"a") == b"1"


def test_size_grows_as_data_is_written(kv: KeyValueStore) -> None:
    before = kv.size_bytes()
    kv.write([(CF, i.to_bytes(4), b"v" * 1000) for i in range(200)], sync=True)
    assert kv.size_bytes() > before
    assert kv.size_bytes() > 0


def test_a_closed_store_refuses_reads_and_writes(engine: Engine) -> None:
    kv = engine.open()
    kv.write([(CF, b"a", b"1")], sync=True)
    kv.close()
    with pytest.raises(RuntimeError, match="closed"):
        kv.get(CF, b"a")
    with pytest.raises(RuntimeError, match="closed"):
        kv.multi_get(CF, [b"a"])
    with pytest.raises(RuntimeError, match="closed"):
        list(kv.scan(CF, *EVERYTHING))
    with pytest.raises(RuntimeError, match="closed"):
        kv.write([(CF, b"b", b"2")], sync=False)
    with pytest.raises(RuntimeError, match="closed"):
        kv.delete_range(CF, *EVERYTHING)
    with pytest.raises(RuntimeError, match="closed"):
        kv.sync_wal()
    kv.close()  # closing again is harmless: shutdown paths may get there twice


def test_rocks_store_keeps_synced_and_unsynced_writes_across_a_clean_reopen(
    tmp_path: Path,
) -> None:
    kv = RocksStore(tmp_path / "db")
    kv.write([(CF, b"synced", b"1")], sync=True)
    kv.write([(CF, b"unsynced", b"2"), (OTHER_CF, b"m", b"3")], sync=False)
    kv.write([(CF, b"gone", b"x")], sync=False)
    kv.write([(CF, b"gone", None)], sync=False)
    kv.close()
    kv = RocksStore(tmp_path / "db")
    try:
        assert _all(kv, CF) == [(b"synced", b"1"), (b"unsynced", b"2")]
        assert _all(kv, OTHER_CF) == [(b"m", b"3")]
    finally:
        kv.close()


_short_keys = st.binary(min_size=0, max_size=4)


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    batches=st.lists(
        st.lists(st.tuples(_short_keys, st.one_of(st.none(), st.binary(max_size=3))), max_size=8),
        max_size=6,
    ),
    bounds=st.lists(st.tuples(_short_keys, _short_keys), min_size=1, max_size=4),
)
def test_scans_agree_with_a_sorted_dict_for_any_writes(
    kv: KeyValueStore,
    batches: list[list[tuple[bytes, bytes | None]]],
    bounds: list[tuple[bytes, bytes]],
) -> None:
    kv.delete_range(CF, *EVERYTHING)  # the store is shared by every example of this test
    expected: dict[bytes, bytes] = {}
    for batch in batches:
        kv.write([(CF, k, v) for k, v in batch], sync=False)
        for k, v in batch:
            if v is None:
                expected.pop(k, None)
            else:
                expected[k] = v
    assert _all(kv, CF) == sorted(expected.items())
    for start, end in bounds:
        inside = sorted((k, v) for k, v in expected.items() if start <= k < end)
        assert list(kv.scan(CF, start, end)) == inside
        assert list(kv.scan(CF, start, end, reverse=True)) == inside[::-1]
    probe = [k for batch in batches for k, _ in batch]
    assert kv.multi_get(CF, probe) == [expected.get(k) for k in probe]


# -- the graph layout on each engine ---------------------------------------------------------

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


def _raw(kv: KeyValueStore, cf: str) -> dict[bytes, bytes]:
    return dict(kv.scan(cf, *EVERYTHING))


def _kind(kind: NodeKind) -> bytes:
    return bytes([NODE_KIND_CODES[kind]])


def _framed(node: Node) -> bytes:
    """A session index value: the node's record as one entry of a QueryBatch (how the index
    holds it)."""
    return pb.QueryBatch(nodes=[node_message(node)]).SerializeToString(deterministic=True)


def _ekind(kind: EdgeKind) -> bytes:
    return bytes([EDGE_KIND_CODES[kind]])


def _persisted(kv: KeyValueStore) -> GraphCounts:
    """The counts as the store keeps them on disk."""
    return Counters(kv).snapshot()


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


def test_schema_version_is_written_when_a_store_is_first_opened(kv: KeyValueStore) -> None:
    assert kv.get("meta", b"schema_version") is None
    store = GraphStore(kv)
    assert store.schema_version == SCHEMA_VERSION
    assert kv.get("meta", b"schema_version") == str(SCHEMA_VERSION).encode()
    GraphStore(kv)  # opening again accepts its own version
    assert kv.get("meta", b"schema_version") == str(SCHEMA_VERSION).encode()


def test_a_store_written_by_a_newer_schema_is_refused(kv: KeyValueStore) -> None:
    GraphStore(kv)
    kv.write([("meta", b"schema_version", str(SCHEMA_VERSION + 1).encode())], sync=True)
    with pytest.raises(IncompatibleSchema, match=f"schema version {SCHEMA_VERSION + 1}"):
        GraphStore(kv)


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


# -- deletes through the service leave nothing behind ----------------------------------------


def _everything(kv: KeyValueStore) -> dict[str, dict[bytes, bytes]]:
    return {cf: _raw(kv, cf) for cf in COLUMN_FAMILIES if cf not in ("events", "meta")}


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


def test_delete_session_removes_every_index_entry(kv: KeyValueStore) -> None:
    empty = _everything(kv)
    service, ids = _populated(kv)
    assert service.delete_session(ids["session"]) == (5, 8)
    raw = _everything(kv)
    survivors = {ids["keep"], ids["agent"], ids["kept_prompt"]}
    assert set(raw["nodes"]) == survivors
    assert {k[-16:] for k in raw["by_kind"]} == survivors
    assert {k[-17:-1] for k in raw["by_session"]} == {ids["kept_prompt"]}
    assert set(raw["edges_out"]) == {ids["kept_prompt"] + _ekind(EdgeKind.BELONGS_TO) + ids["keep"]}
    assert set(raw["edges_in"]) == {ids["keep"] + _ekind(EdgeKind.BELONGS_TO) + ids["kept_prompt"]}
    counts = service.store.counts()
    assert counts.nodes[NodeKind.PROMPT] == 1 and counts.nodes[NodeKind.RESPONSE] == 0
    assert counts.edges == 1 and counts.active_sessions == 1
    assert counts.tokens.total_tokens == 0
    service.delete_session(ids["keep"])
    service.delete_node(ids["agent"])
    assert _everything(kv) == empty
    assert service.store.counts() == _counts()


def test_archive_then_restore_leaves_the_store_as_it_was(kv: KeyValueStore) -> None:
    """Archival removes a session with every index entry and its history in the log; a
    restore writes back exactly the records, index entries and events there were."""
    service, ids = _populated(kv)
    before = {cf: _raw(kv, cf) for cf in COLUMN_FAMILIES if cf != "meta"}
    export = service.archive.export_session(ids["session"])
    service.archive.archive_session(ids["session"], content_sha256=export.sha256())
    after = _everything(kv)
    gone = {n.id for n in [export.session, *export.nodes]}
    for cf, entries in after.items():
        assert not any(k[:16] in gone or k[-16:] in gone for k in entries), cf
    marker = [decode_event(int.from_bytes(k), v) for k, v in _raw(kv, "events").items()]
    assert not any(e.session_id == ids["session"] and not e.type.is_lifecycle for e in marker)
    service.archive.restore_session(export)
    restored = {cf: _raw(kv, cf) for cf in COLUMN_FAMILIES if cf != "meta"}
    # Everything is back; the log additionally holds the two lifecycle events.
    extra = {k: v for k, v in restored["events"].items() if k not in before["events"]}
    assert [decode_event(int.from_bytes(k), v).type.value for k, v in sorted(extra.items())] == [
        "session_archived",
        "session_restored",
    ]
    restored["events"] = {k: v for k, v in restored["events"].items() if k in before["events"]}
    assert restored == before


def test_last_session_event_time_is_the_newest_retained_event(kv: KeyValueStore) -> None:
    now = [100]
    service = GraphService(GraphStore(kv), clock=lambda: now[0])
    session = service.create_session(NewSession(title="t"))
    prompt = service.create_node(NewNode(NodeKind.PROMPT, session_id=session.id, content="q"))
    now[0] = 200
    service.update_node(prompt.id, content="edited", metadata=None)
    assert service.store.events.last_session_event_time(session.id) == 200
    service.store.events.trim(service.store.events.last_sequence + 1)
    assert service.store.events.last_session_event_time(session.id) == 0


def test_delete_node_removes_its_edges_at_both_ends_and_its_index_entries(
    kv: KeyValueStore,
) -> None:
    service, ids = _populated(kv)
    assert service.delete_node(ids["response"]) == 3  # responds_to, invokes, references
    raw = _everything(kv)
    assert ids["response"] not in raw["nodes"]
    assert all(ids["response"] not in k for cf in raw.values() for k in cf)
    for key in raw["edges_out"]:
        assert key[:16] in raw["nodes"] and key[17:] in raw["nodes"]
    for key in raw["edges_in"]:
        assert key[:16] in raw["nodes"] and key[17:] in raw["nodes"]
    session = service.get_session(ids["session"])
    usage = session.details_as(SessionDetails).token_usage
    assert (usage.prompt_tokens, usage.total_tokens) == (0, 0)
    assert service.store.counts().tokens.total_tokens == 0


def _legacy_record(node: Node) -> bytes:
    """A node record as schema 2 wrote it: a compact JSON array."""
    session = node.session_id.hex() if node.session_id is not None else None
    row = [node.kind.value, session, node.content, node.metadata]
    row += [node.create_time, node.update_time, details_fields(node.details)]
    return json.dumps(row, ensure_ascii=False, separators=(",", ":")).encode()


def _downgrade_to_schema_2(kv: KeyValueStore) -> None:
    """Rewrite a schema-3 store the way schema 2 laid it out: JSON node records (in events
    too) and session index entries keyed without the kind, holding only the kind."""
    ops: list[Op] = []
    for node_id, record in _all(kv, "nodes"):
        node = decode_node(node_id, record)
        ops.append(("nodes", node_id, _legacy_record(node)))
        if node.session_id is not None and node.kind is not NodeKind.SESSION:
            key = node.session_id + node.create_time.to_bytes(8) + node.id
            ops.append(("by_session", key + _kind(node.kind), None))
            ops.append(("by_session", key, _kind(node.kind)))
    for key, raw in _all(kv, "events"):
        event = decode_event(int.from_bytes(key), raw)
        if event.node is not None:
            header = raw.partition(b"\n")[0]
            ops.append(("events", key, header + b"\n" + _legacy_record(event.node)))
    ops.append(("meta", b"schema_version", b"2"))
    kv.write(ops, sync=True)


def test_a_schema_2_store_is_upgraded_to_wire_format_records_on_open(kv: KeyValueStore) -> None:
    service, ids = _populated(kv)
    service.update_node(ids["prompt"], content="edited", metadata={"k": "v"})
    service.close_session(ids["keep"])
    layout = {cf: _raw(kv, cf) for cf in COLUMN_FAMILIES if cf != "meta"}
    events = service.store.events.read(1, service.store.events.last_sequence, 1000)
    _downgrade_to_schema_2(kv)
    assert _raw(kv, "nodes") != layout["nodes"]

    upgraded = GraphStore(kv)
    assert upgraded.schema_version == SCHEMA_VERSION == 3
    assert kv.get("meta", b"schema_version") == b"3"
    # Byte for byte what schema 3 writes itself, events included.
    assert {cf: _raw(kv, cf) for cf in COLUMN_FAMILIES if cf != "meta"} == layout
    assert upgraded.events.read(1, upgraded.events.last_sequence, 1000) == events
    # Opening again changes nothing.
    assert GraphStore(kv).schema_version == 3
    assert {cf: _raw(kv, cf) for cf in COLUMN_FAMILIES if cf != "meta"} == layout


def test_an_upgrade_interrupted_midway_finishes_on_the_next_open(kv: KeyValueStore) -> None:
    """The upgrade writes in batches with the version last: a crash leaves version 2 over a
    mix of converted and unconverted records, which the next open takes as it finds them."""
    _populated(kv)
    layout = {cf: _raw(kv, cf) for cf in COLUMN_FAMILIES if cf != "meta"}
    _downgrade_to_schema_2(kv)
    # Half the node records were converted before the crash.
    for node_id, record in _all(kv, "nodes")[::2]:
        node = decode_legacy_node(node_id, record)
        kv.write([("nodes", node_id, encode_node(node))], sync=True)
    assert GraphStore(kv).schema_version == 3
    assert {cf: _raw(kv, cf) for cf in COLUMN_FAMILIES if cf != "meta"} == layout
