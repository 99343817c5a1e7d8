"""Answers larger than a message: a write whose answer could not be sent is refused before it is
written (a client retrying it stores nothing twice), and pages, streamed batches, listings and
traversals stop at a byte budget, so that any session can be read whatever its nodes hold."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterator

import grpc
import pytest
from memorygraph.client import Client
from memorygraph.model import NodeKind
from memorygraph.server import RunningServer
from memorygraph.v1 import graph_pb2 as pb
from memorygraph.v1.graph_pb2_grpc import MemoryGraphServiceStub

Start = Callable[..., RunningServer]
MIB = 1 << 20


@pytest.fixture
def big(start_inprocess: Start) -> Iterator[tuple[Client, str, list[str]]]:
    """A server at its default limits and a session of nine prompts of almost 1 MiB each
    (content at the limit, less room for the rest of the node): more than one message."""
    server = start_inprocess()
    with Client(f"127.0.0.1:{server.port}") as mg:
        session = mg.create_session(title="big")
        ids = [mg.add_prompt(session.id, str(i) * (MIB - 64)).id for i in range(9)]
        yield mg, session.id, ids


@pytest.mark.one_process
def test_a_batch_whose_response_would_not_fit_is_refused_and_nothing_is_stored(
    start_inprocess: Start,
) -> None:
    server = start_inprocess(max_message_bytes=64 * 1024)
    with grpc.insecure_channel(f"127.0.0.1:{server.port}") as channel:
        stub = MemoryGraphServiceStub(channel)
        session = stub.CreateSession(pb.CreateSessionRequest())
        node = pb.CreateNodeRequest(kind=pb.NODE_KIND_PROMPT, session_id=session.id, content="q")
        request = pb.BatchCreateNodesRequest(requests=[node] * 600)
        assert request.ByteSize() < 64 * 1024  # the request fits; its answer would not
        sequence = server.store.events.last_sequence
        refused = []
        for _ in range(2):  # as a client retrying it would
            with pytest.raises(grpc.RpcError) as info:
                stub.BatchCreateNodes(request)
            refused.append(info.value)
        assert server.store.counts().nodes[NodeKind.PROMPT] == 0
        assert server.store.events.last_sequence == sequence
        for error in refused:
            assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
            assert "nothing was written" in error.details()
        half = pb.BatchCreateNodesRequest(requests=[node] * 300)
        assert len(stub.BatchCreateNodes(half).nodes) == 300
        assert server.store.counts().nodes[NodeKind.PROMPT] == 300


def test_query_pages_stop_at_a_byte_budget_and_resume_where_they_stopped(
    big: tuple[Client, str, list[str]],
) -> None:
    mg, session_id, ids = big
    pages = []
    token = ""
    while True:
        page = mg.query(session_id=session_id, kinds=["prompt"], page_token=token)
        assert 0 < page.ByteSize() <= 8 * MIB
        pages.append([n.id for n in page.nodes])
        token = page.next_page_token
        if not token:
            break
    assert len(pages) > 1
    assert [i for page in pages for i in page] == ids
    assert [n.id for n in mg.iter_query(session_id=session_id)] == ids
    newest_first = [n.id for n in mg.iter_query(session_id=session_id, descending=True)]
    assert newest_first == ids[::-1]
    # The kind index, read without a session, pages the same way.
    assert [n.id for n in mg.iter_query(kinds=["prompt"])] == ids


def test_stream_query_batches_stop_at_a_byte_budget(big: tuple[Client, str, list[str]]) -> None:
    mg, session_id, ids = big
    assert [n.id for n in mg.stream_query(session_id=session_id, batch_size=1000)] == ids
    assert [n.id for n in mg.stream_query(kinds=["prompt"], limit=7)] == ids[:7]


def test_a_record_larger_than_the_budget_still_comes_one_per_page(start_inprocess: Start) -> None:
    server = start_inprocess(max_message_bytes=3 * MIB, max_content_bytes=2 * MIB)
    with Client(f"127.0.0.1:{server.port}") as mg:
        session = mg.create_session()
        ids = [mg.add_prompt(session.id, "x" * (2 * MIB - 64)).id for _ in range(3)]
        first = mg.query(session_id=session.id)
        assert [n.id for n in first.nodes] == ids[:1] and first.next_page_token
        assert [n.id for n in mg.iter_query(session_id=session.id)] == ids


def test_session_listings_stop_at_a_byte_budget(start_inprocess: Start) -> None:
    server = start_inprocess()
    with Client(f"127.0.0.1:{server.port}") as mg:
        made = [mg.create_session(title=str(i) * (MIB - 64), user_id="u").id for i in range(10)]
        assert [s.id for s in mg.iter_sessions(user_id="u")] == made[::-1]
        later = dt.datetime.now(dt.UTC) + dt.timedelta(days=1)
        assert [c.session.id for c in mg.iter_archive_candidates(later)] == made


def test_traverse_stops_at_a_byte_budget_and_says_so(big: tuple[Client, str, list[str]]) -> None:
    mg, session_id, ids = big
    result = mg.traverse(session_id, direction="incoming", max_depth=1)
    assert result.truncated
    assert 1 < len(result.nodes) < 10 and result.ByteSize() <= 8 * MIB
    small = mg.traverse(ids[0], direction="both", max_depth=1)
    assert not small.truncated


def test_batch_get_nodes_refuses_more_than_one_response_carries(
    big: tuple[Client, str, list[str]],
) -> None:
    mg, _, ids = big
    assert len(mg.batch_get_nodes(ids[:5]).nodes) == 5
    with pytest.raises(Exception, match="ask for fewer") as info:
        mg.batch_get_nodes(ids)
    assert type(info.value).__name__ == "InvalidArgument"
