"""The state machine's rules for reads over many nodes: queries and session listings."""

from __future__ import annotations

from hypothesis import event
from hypothesis import strategies as st
from hypothesis.stateful import rule
from memorygraph.codec.nodes import node_from_message
from memorygraph.graph.query import QueryFilter
from memorygraph.model import MAX_TIME, Node, NodeKind, SessionState
from memorygraph.v1 import graph_pb2 as pb

from .machine import MachineBase
from .strategies import mostly


def _nodes(entries: list[bytes]) -> list[Node]:
    """Domain nodes from query results (node records framed as QueryBatch entries, which
    joined must be a QueryBatch)."""
    return [node_from_message(m) for m in pb.QueryBatch.FromString(b"".join(entries)).nodes]


class QueryRules(MachineBase):
    """Queries compared page by page and batch by batch, and session listings."""

    @rule(
        data=st.data(),
        kinds=st.one_of(st.just(set()), st.sets(st.sampled_from(list(NodeKind)), max_size=3)),
        metadata=mostly([{}], [{"k1": "a"}, {"k2": "b"}], odds=4),
        descending=st.booleans(),
        limit=st.sampled_from([1, 2, 1, 2, 3, 0]),
        batch_size=st.integers(1, 3),
    )
    def query(
        self,
        data: st.DataObject,
        kinds: set[NodeKind],
        metadata: dict[str, str],
        descending: bool,
        limit: int,
        batch_size: int,
    ) -> None:
        session_id = self._maybe(data, NodeKind.SESSION, chance=2)
        times = self._times()
        start = data.draw(mostly([0], times, odds=3))
        end = data.draw(mostly([MAX_TIME], [t for t in times if t >= start], odds=3))
        query = QueryFilter(
            session_id, frozenset(kinds), start, end, tuple(sorted(metadata.items())), descending
        )
        expected = self.model.query(
            session_id, frozenset(kinds), start, end, query.metadata, descending
        )
        want = limit or 100
        pages: list[list[Node]] = []
        token = ""
        while True:
            page = self.service.query(query, limit=limit, page_token=token)
            nodes = _nodes(page.entries)
            pages.append(nodes)
            assert len(nodes) <= want
            if not page.next_page_token:
                break
            assert len(nodes) == want, "only the last page may be short"
            assert len(pages) <= len(expected) + 1, "paging does not end"
            token = page.next_page_token
        assert [n for p in pages for n in p] == expected
        event(f"query: {'some' if expected else 'no'} results, {len(pages)} pages")
        if not metadata and len(pages) > 1:
            assert pages[-1], "a token was handed out with nothing after it"
        stream_limit = data.draw(st.integers(0, 4))
        batches = list(self.service.stream_query(query, batch_size=batch_size, limit=stream_limit))
        streamed = [node for batch in batches for node in _nodes(batch)]
        assert streamed == expected[: stream_limit or None]
        assert all(0 < len(b) <= batch_size for b in batches)
        assert all(len(b) == batch_size for b in batches[:-1])

    @rule(
        state=st.sampled_from([None, SessionState.ACTIVE, SessionState.CLOSED]),
        user_id=st.sampled_from(["", "ann", "bob"]),
        limit=st.sampled_from([0, 1, 2]),
    )
    def list_sessions(self, state: SessionState | None, user_id: str, limit: int) -> None:
        expected = self.model.sessions(state.value if state else None, user_id)
        found: list[Node] = []
        token = ""
        for _ in range(len(expected) + 2):
            page = self.service.list_sessions(
                limit=limit, page_token=token, state=state, user_id=user_id
            )
            assert len(page.nodes) <= (limit or 100)
            found += page.nodes
            token = page.next_page_token
            if not token:
                break
        assert not token, "paging does not end"
        assert found == expected
        event(f"list_sessions: {'some' if expected else 'no'} results")
