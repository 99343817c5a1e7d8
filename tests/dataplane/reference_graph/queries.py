"""Queries over the nodes of the reference model, and its counters."""

from __future__ import annotations

from memorygraph.model import (
    Node,
    NodeKind,
    ResponseDetails,
    SessionDetails,
    SessionState,
    TokenUsage,
)
from memorygraph.store import GraphCounts

from .state import GraphState


class QueryOperations(GraphState):
    """Reads over every node, and the counters."""

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
