"""Model-based test of the graph service: random operation sequences on `GraphService`, each
compared with the plain-Python `ReferenceGraph`, on both storage engines.

After every step the answers must agree (returned values, the class of every refusal, query
pages and their order, edge sets, traversals, counters), and the store must hold exactly what
the model implies: each node's record and index entries, both entries of each edge, template
names and persisted counters, read from the raw column families. On RocksDB a `restart` step
closes and reopens the store, after which everything must be as before.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import HealthCheck, event, settings
from hypothesis import strategies as st
from hypothesis.stateful import invariant, precondition, rule, run_state_machine_as_test
from memorygraph.codec.nodes import node_message
from memorygraph.errors import NotFound
from memorygraph.graph.service import GraphService
from memorygraph.model import NodeKind, TemplateDetails
from memorygraph.store.counters import Counters
from memorygraph.store.keys import EDGE_KIND_CODES, NODE_KIND_CODES, SHARDED_FAMILIES
from memorygraph.v1 import graph_pb2 as pb

from .graph_service_machine.edge_rules import EdgeRules
from .graph_service_machine.node_rules import NodeRules
from .graph_service_machine.query_rules import QueryRules
from .graph_service_machine.template_rules import TemplateRules
from .reference_graph import ReferenceGraph
from .split_support import SplitGraph, SplitService, UnionView
from .store_support import _raw


def _expected_layout(model: ReferenceGraph) -> dict[str, dict[bytes, bytes]]:
    """Every index entry the model's nodes and edges imply, written out byte by byte (a
    session's entries carry the node's record)."""
    by_session, by_kind, names = {}, {}, {}
    for node in model.nodes.values():
        kind = bytes([NODE_KIND_CODES[node.kind]])
        when = node.create_time.to_bytes(8)
        if node.session_id is not None and node.kind is not NodeKind.SESSION:
            framed = pb.QueryBatch(nodes=[node_message(node)]).SerializeToString(deterministic=True)
            by_session[node.session_id + when + node.id + kind] = framed
        by_kind[kind + when + node.id] = node.session_id or b""
        if node.kind is NodeKind.TEMPLATE:
            names[b"template/" + node.details_as(TemplateDetails).name.encode()] = node.id
    edges_in = {t + bytes([EDGE_KIND_CODES[k]]) + s: b"" for s, k, t in model.edges}
    return {"by_session": by_session, "by_kind": by_kind, "names": names, "edges_in": edges_in}


class GraphServiceMachine(NodeRules, EdgeRules, TemplateRules, QueryRules):
    """The rules of every area of the API, a restart, and the comparison after every step."""

    # -- restarts --------------------------------------------------------------------------------

    @precondition(lambda self: self.engine == "rocks")
    @rule()
    def restart(self) -> None:
        event("restart")
        counts, sequence = self.store.counts(), self.store.events.last_sequence
        self.store.close()
        self.store = self._open()
        self.service = GraphService(self.store, clock=self.clock)
        assert self.store.counts() == counts
        assert self.store.events.last_sequence == sequence

    # -- after every step ------------------------------------------------------------------------

    @invariant()
    def store_matches_model(self) -> None:
        model, kv = self.model, self.store.kv
        for node_id, node in model.nodes.items():
            assert self.service.get_node(node_id) == node
        for node_id in self.gone:
            if node_id not in model.nodes:
                with pytest.raises(NotFound):
                    self.service.get_node(node_id)
        assert sorted(_raw(kv, "nodes")) == sorted(model.nodes)
        layout = _expected_layout(model)
        for cf, entries in layout.items():
            assert _raw(kv, cf) == entries, f"column family {cf} disagrees with the model"
        out = _raw(kv, "edges_out")
        assert sorted(out) == sorted(s + bytes([EDGE_KIND_CODES[k]]) + t for s, k, t in model.edges)
        for edge in model.edges.values():
            assert self.store.get_edge(edge.key) == edge
            assert edge.source_id in model.nodes and edge.target_id in model.nodes
        counts = model.counts()
        assert self.store.counts() == counts
        assert Counters(kv).snapshot() == counts, "the persisted counts disagree"


ENGINE_SETTINGS = settings(
    max_examples=100,
    stateful_step_count=50,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


@pytest.mark.slow
@pytest.mark.parametrize("engine", ["memory", "rocks"])
def test_graph_service_agrees_with_the_reference_model(engine: str, tmp_path: Path) -> None:
    run_state_machine_as_test(
        lambda: GraphServiceMachine(engine, tmp_path), settings=ENGINE_SETTINGS
    )


class SplitGraphMachine(GraphServiceMachine):
    """The same rules on a graph split over two workers (8 shards, shard s on worker s mod 2):
    each request goes to the next worker in turn, whichever shards it touches, and listings
    are each worker's pages merged. After every step the graph must be what the model says,
    every key on the worker that owns its shard, and nothing left undelivered."""

    transport = "direct"

    def __init__(self, workdir: Path) -> None:
        super().__init__("memory", workdir)
        self.graph = SplitGraph(count=2, shards=8, clock=self.clock, transport=self.transport)
        self.service = SplitService(self.graph)  # type: ignore[assignment]

    def teardown(self) -> None:
        self.graph.close()
        super().teardown()

    @invariant()
    def store_matches_model(self) -> None:
        model, view = self.model, UnionView(self.graph.engines)
        for node_id, node in model.nodes.items():
            assert self.service.get_node(node_id) == node
        for node_id in self.gone:
            if node_id not in model.nodes:
                with pytest.raises(NotFound):
                    self.service.get_node(node_id)
        assert sorted(_raw(view, "nodes")) == sorted(model.nodes)  # type: ignore[arg-type]
        for cf, entries in _expected_layout(model).items():
            assert _raw(view, cf) == entries, f"column family {cf} disagrees with the model"  # type: ignore[arg-type]
        out = _raw(view, "edges_out")  # type: ignore[arg-type]
        assert sorted(out) == sorted(s + bytes([EDGE_KIND_CODES[k]]) + t for s, k, t in model.edges)
        for index, engine in enumerate(self.graph.engines):
            for cf in SHARDED_FAMILIES:
                for key in engine.scan_keys(cf, b"", b"\xff" * 64):
                    owner = self.graph.owners[int.from_bytes(key[:2])]
                    assert owner == index, f"{cf} key on the wrong worker"
            events = [int.from_bytes(key) for key in engine.scan_keys("events", b"", b"\xff" * 9)]
            assert all(self.graph.owners[s & 0xFFF] == index for s in events), "event elsewhere"
            assert self.graph.services[index].store.events.retained() == len(events)
        for service in self.graph.services:
            assert service.store.deliver_outbox()
            for edge in model.edges.values():
                assert service.store.get_edge(edge.key) == edge
        assert self.service.counts() == model.counts()  # type: ignore[attr-defined]


class MovingSplitGraphMachine(SplitGraphMachine):
    """The same, with random shards moved to the other worker between steps (some moves cut
    short by a crash of every worker after one of their steps, and run again)."""

    @rule(
        shard=st.integers(0, 7),
        crash=st.sampled_from([None, "copied", "fenced", "adopted", "handed over", "released"]),
    )
    def move_a_shard(self, shard: int, crash: str | None) -> None:
        self.graph.move(shard, 1 - self.graph.owners[shard], crash_after=crash)

    @rule(shard=st.integers(0, 7))
    def move_a_shard_as_a_serving_worker_does(self, shard: int) -> None:
        self.graph.move_online(shard, 1 - self.graph.owners[shard], self.dir)


class SplitOverGrpcMachine(SplitGraphMachine):
    """The workers reaching each other through their `WorkerPeer` servers."""

    transport = "grpc"


@pytest.mark.slow
def test_a_graph_split_over_workers_agrees_with_the_reference_model(tmp_path: Path) -> None:
    run_state_machine_as_test(lambda: SplitGraphMachine(tmp_path), settings=ENGINE_SETTINGS)


@pytest.mark.slow
def test_shards_moved_between_workers_keep_agreeing_with_the_reference_model(
    tmp_path: Path,
) -> None:
    run_state_machine_as_test(lambda: MovingSplitGraphMachine(tmp_path), settings=ENGINE_SETTINGS)


@pytest.mark.slow
def test_workers_over_grpc_agree_with_the_reference_model(tmp_path: Path) -> None:
    run_state_machine_as_test(
        lambda: SplitOverGrpcMachine(tmp_path), settings=settings(ENGINE_SETTINGS, max_examples=25)
    )
