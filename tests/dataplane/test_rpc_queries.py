"""Query and StreamQuery through the RPCs: filters, paging, order, time windows, the page cap."""

from __future__ import annotations

from memorygraph.v1 import graph_pb2 as pb

from .rpc_support import Stub, add_prompts


def test_query_filters_paging_and_stream(stub: Stub) -> None:
    session = stub.CreateSession(pb.CreateSessionRequest())
    prompts = [
        stub.AddPrompt(
            pb.AddPromptRequest(
                session_id=session.id, content=f"p{i}", metadata={"parity": str(i % 2)}
            )
        )
        for i in range(25)
    ]
    query = pb.QueryFilter(session_id=session.id, kinds=[pb.NODE_KIND_PROMPT])
    collected, token = [], ""
    while True:
        page = stub.Query(pb.QueryRequest(filter=query, limit=10, page_token=token))
        collected += [n.id for n in page.nodes]
        token = page.next_page_token
        if not token:
            break
    assert collected == [p.id for p in prompts]

    even = stub.Query(
        pb.QueryRequest(filter=pb.QueryFilter(session_id=session.id, metadata={"parity": "0"}))
    )
    assert [n.content for n in even.nodes] == [f"p{i}" for i in range(0, 25, 2)]

    newest = stub.Query(
        pb.QueryRequest(filter=pb.QueryFilter(session_id=session.id, descending=True), limit=3)
    )
    assert [n.id for n in newest.nodes] == [p.id for p in prompts[::-1][:3]]

    window = pb.QueryFilter(
        session_id=session.id,
        start_time=prompts[5].create_time,
        end_time=prompts[8].create_time,
    )
    assert [n.id for n in stub.Query(pb.QueryRequest(filter=window)).nodes] == [
        p.id for p in prompts[5:8]
    ]

    batches = list(stub.StreamQuery(pb.StreamQueryRequest(filter=query, batch_size=10)))
    assert [len(b.nodes) for b in batches] == [10, 10, 5]
    assert [n.id for b in batches for n in b.nodes] == [p.id for p in prompts]
    limited = list(stub.StreamQuery(pb.StreamQueryRequest(filter=query, batch_size=4, limit=6)))
    assert sum(len(b.nodes) for b in limited) == 6

    by_kind = stub.Query(pb.QueryRequest(filter=pb.QueryFilter(kinds=[pb.NODE_KIND_SESSION])))
    assert [n.id for n in by_kind.nodes] == [session.id]
    assert by_kind.nodes[0].session.id == session.id


def test_query_page_size_is_capped(stub: Stub) -> None:
    session = stub.CreateSession(pb.CreateSessionRequest())
    add_prompts(stub, session.id, 1005)
    page = stub.Query(pb.QueryRequest(filter=pb.QueryFilter(session_id=session.id), limit=5000))
    assert len(page.nodes) == 1000 and page.next_page_token
    rest = stub.Query(
        pb.QueryRequest(
            filter=pb.QueryFilter(session_id=session.id),
            limit=5000,
            page_token=page.next_page_token,
        )
    )
    assert len(rest.nodes) == 5 and not rest.next_page_token
