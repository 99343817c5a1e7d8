"""The state machine's rules for edges: created, deleted, listed and traversed."""

from __future__ import annotations

from hypothesis import strategies as st
from hypothesis.stateful import rule
from memorygraph.model import Direction, EdgeKind, NewEdge

from .machine import MachineBase, _call
from .strategies import directions, edge_kinds_st, metadata_st


class EdgeRules(MachineBase):
    """Edges created, deleted and listed, and traversals from a node."""

    @rule(data=st.data(), kind=st.sampled_from(list(EdgeKind)), metadata=metadata_st)
    def create_edge(self, data: st.DataObject, kind: EdgeKind, metadata: dict[str, str]) -> None:
        spec = NewEdge(self._pick(data), self._pick(data), kind, metadata)
        outcome = _call(lambda: self.service.create_edge(spec))
        expected = self._apply("create_edge", outcome, lambda m: m.create_edge(spec, outcome.got))
        if expected is not None:
            assert outcome.value == expected

    @rule(data=st.data())
    def delete_edge(self, data: st.DataObject) -> None:
        edges = list(self.model.edges)
        if edges and data.draw(st.integers(0, 4)):
            source, kind, target = edges[data.draw(st.integers(0, len(edges) - 1))]
        else:
            source, kind, target = (
                self._pick(data),
                data.draw(st.sampled_from(list(EdgeKind))),
                self._pick(data),
            )
        outcome = _call(lambda: self.service.delete_edge(source, target, kind))
        self._apply("delete_edge", outcome, lambda m: m.delete_edge((source, kind, target)))

    @rule(data=st.data(), direction=directions, kinds=edge_kinds_st)
    def get_edges(self, data: st.DataObject, direction: Direction, kinds: set[EdgeKind]) -> None:
        node_id = self._pick(data)
        outcome = _call(lambda: self.service.get_edges(node_id, direction, sorted(kinds)))
        expected = self._apply(
            "get_edges", outcome, lambda m: m.edges_of(node_id, direction, kinds)
        )
        if expected is None:
            return
        got = outcome.value
        assert got is not None
        keys = [e.key for e in got]
        assert len(keys) == len(set(keys)), "an edge was listed twice"
        assert sorted(keys) == sorted(e.key for e in expected)
        assert all(e == self.model.edges[e.key] for e in got)
        if direction is Direction.BOTH:
            outgoing = [e.source_id == node_id for e in got]
            assert outgoing == sorted(outgoing, reverse=True), "outgoing edges come first"

    @rule(
        data=st.data(),
        direction=directions,
        kinds=edge_kinds_st,
        max_depth=st.sampled_from([0, 1, 1, 2, 2, 3, 11, -1]),
        max_nodes=st.sampled_from([0, 0, 0, 1, 2, 3, -1]),
    )
    def traverse(
        self,
        data: st.DataObject,
        direction: Direction,
        kinds: set[EdgeKind],
        max_depth: int,
        max_nodes: int,
    ) -> None:
        start = self._pick(data)
        outcome = _call(
            lambda: self.service.traverse(
                start,
                edge_kinds=sorted(kinds),
                direction=direction,
                max_depth=max_depth,
                max_nodes=max_nodes,
            )
        )
        expected = self._apply(
            "traverse", outcome, lambda m: m.traverse(start, kinds, direction, max_depth, max_nodes)
        )
        if expected is None:
            return
        distance, followed = expected
        result = outcome.value
        assert result is not None
        ids = [node.id for node, _ in result.nodes]
        assert len(ids) == len(set(ids)), "a node was visited twice"
        assert result.nodes[0] == (self.model.nodes[start], 0)
        depths = [depth for _, depth in result.nodes]
        assert depths == sorted(depths), "breadth-first order"
        assert all(distance.get(n.id) == d and n == self.model.nodes[n.id] for n, d in result.nodes)
        limit = max_nodes or 1000
        assert result.truncated == (len(distance) > limit)
        if result.truncated:
            assert len(ids) == limit
        else:
            assert set(ids) == set(distance)
            assert sorted(e.key for e in result.edges) == sorted(followed)
