"""Edges in the reference model: created, deleted, listed by direction and kind, traversed."""

from __future__ import annotations

from memorygraph.errors import AlreadyExists, InvalidArgument, NotFound
from memorygraph.model import Direction, Edge, EdgeKey, EdgeKind, NewEdge

from .state import GraphState, Refused


class EdgeOperations(GraphState):
    """Edges made by hand, listed and followed."""

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
