"""A session query sends the session index's values as they are: no record is decoded, framed
again or copied on the way (what makes StreamQuery as fast as the wire allows)."""

from __future__ import annotations

import pytest
from memorygraph.codec import framing
from memorygraph.graph import query as query_module
from memorygraph.graph.query import QueryFilter
from memorygraph.graph.service import GraphService
from memorygraph.model import NewNode, NewSession, NodeKind, format_id
from memorygraph.store import GraphStore, MemoryStore
from memorygraph.store.keys import CF_BY_SESSION
from memorygraph.v1 import graph_pb2 as pb


def test_a_session_stream_is_the_index_values_joined(monkeypatch: pytest.MonkeyPatch) -> None:
    kv = MemoryStore()
    service = GraphService(GraphStore(kv))
    session = service.create_session(NewSession(title="s"))
    made = service.create_nodes(
        [NewNode(NodeKind.PROMPT, session.id, f"q{i}", {"i": str(i)}) for i in range(50)]
    )
    shards = service.store.shards
    start = shards.prefix(shards.of_id(session.id)) + session.id
    stored = [value for _, value in kv.scan(CF_BY_SESSION, start, start + b"\xff")]
    calls: list[str] = []
    for name in ("frame", "unframe"):
        real = getattr(framing, name)
        monkeypatch.setattr(
            query_module, name, lambda *a, _n=name, _r=real: calls.append(_n) or _r(*a)
        )
    batches = list(service.stream_query(QueryFilter(session_id=session.id), batch_size=20, limit=0))
    assert [len(b) for b in batches] == [20, 20, 10]
    sent = [entry for batch in batches for entry in batch]
    assert all(a is b for a, b in zip(sent, stored, strict=True))  # the very same bytes
    assert calls == []
    joined = pb.QueryBatch.FromString(b"".join(sent))
    assert [n.id for n in joined.nodes] == [format_id(node.id) for node in made]
    # A metadata filter has to look inside, and only then unframes.
    picked = list(
        service.stream_query(
            QueryFilter(session_id=session.id, metadata=(("i", "7"),)), batch_size=20, limit=0
        )
    )
    assert [len(b) for b in picked] == [1] and calls.count("unframe") == 50
