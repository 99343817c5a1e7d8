"""Token counts out of range: refused alone, with a precise status, never failing the requests
written in the same batch, never leaving a total that fails the writes after it — not even
after a restart, and not through a restore."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import replace
from typing import Any

import grpc
import pytest
from memorygraph.errors import InvalidArgument, OutOfRange
from memorygraph.graph.checks import Limits
from memorygraph.graph.export import decode_export
from memorygraph.graph.service import GraphService
from memorygraph.model import (
    NewNode,
    NewSession,
    Node,
    NodeKind,
    ResponseDetails,
    SessionDetails,
    TokenUsage,
)
from memorygraph.server import RunningServer
from memorygraph.store import GraphStore, MemoryStore, StoreChanges, keys
from memorygraph.v1 import graph_pb2 as pb
from memorygraph.v1.graph_pb2_grpc import MemoryGraphServiceStub

Start = Callable[..., RunningServer]
INT64_MAX = 2**63 - 1


def _slow_writes(store: GraphStore) -> list[int]:
    """Make every write to the store take a moment, as a disk would, so that concurrent
    requests queue up and share batches; returns a list growing by one per write."""
    writes: list[int] = []
    write = store.kv.write

    def slow_write(*args: Any, **kwargs: Any) -> None:
        writes.append(1)
        time.sleep(0.005)
        write(*args, **kwargs)

    store.kv.write = slow_write  # type: ignore[method-assign]
    return writes


def _concurrently(calls: list[Callable[[], Any]]) -> list[Any]:
    """Each call in a thread of its own, all at once; their results or errors, in order."""
    results: list[Any] = [None] * len(calls)
    start = threading.Barrier(len(calls))

    def run(i: int) -> None:
        start.wait()
        try:
            results[i] = calls[i]()
        except Exception as exc:
            results[i] = exc

    threads = [threading.Thread(target=run, args=(i,)) for i in range(len(calls))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return results


def _turn(service: GraphService) -> tuple[Node, Node]:
    session = service.create_session(NewSession())
    prompt = service.create_node(NewNode(NodeKind.PROMPT, session.id, "q"))
    return session, prompt


def _response(prompt: Node, usage: TokenUsage) -> NewNode:
    return NewNode(
        NodeKind.RESPONSE, content="a", details=ResponseDetails(prompt.id, token_usage=usage)
    )


@pytest.mark.parametrize(
    "usage",
    [
        TokenUsage(INT64_MAX, 1),  # its total overflows
        TokenUsage(INT64_MAX),  # fits one response, but not what the totals add up to
        TokenUsage(-1, 5),
    ],
)
def test_a_response_with_counts_out_of_range_fails_alone_in_its_batch(usage: TokenUsage) -> None:
    service = GraphService(GraphStore(MemoryStore()))
    session, prompt = _turn(service)
    writes = _slow_writes(service.store)
    calls: list[Callable[[], Any]] = [
        (lambda i=i: service.create_node(NewNode(NodeKind.PROMPT, session.id, f"p{i}")))
        for i in range(40)
    ]
    calls[20] = lambda: service.create_node(_response(prompt, usage))
    results = _concurrently(calls)
    made = [r for i, r in enumerate(results) if i != 20]
    assert all(isinstance(r, Node) for r in made), [r for r in made if not isinstance(r, Node)]
    assert isinstance(results[20], InvalidArgument)
    assert "token" in str(results[20])
    assert len(writes) < 40  # the requests did share batches
    counts = service.store.counts()
    assert counts.nodes[NodeKind.PROMPT] == 40 and counts.nodes[NodeKind.RESPONSE] == 0
    assert counts.tokens == TokenUsage()


def test_a_change_the_store_cannot_encode_fails_only_its_own_request(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Should a value pass the checks and still not fit a record, the batch it shares is
    written again request by request: the others are stored, and it fails alone."""
    service = GraphService(GraphStore(MemoryStore()))
    session, prompt = _turn(service)
    # The checks let it through (raising=False: also where there is no such check).
    monkeypatch.setattr(Limits, "details", lambda self, details: None, raising=False)
    _slow_writes(service.store)
    calls: list[Callable[[], Any]] = [
        (lambda i=i: service.create_node(NewNode(NodeKind.PROMPT, session.id, f"p{i}")))
        for i in range(30)
    ]
    calls[10] = lambda: service.create_node(_response(prompt, TokenUsage(2**64)))
    results = _concurrently(calls)
    assert not isinstance(results[10], Node)
    assert all(isinstance(r, Node) for i, r in enumerate(results) if i != 10)
    assert service.store.counts().nodes[NodeKind.PROMPT] == 30
    assert service.store.counts().nodes[NodeKind.RESPONSE] == 0


def test_a_session_whose_totals_would_overflow_refuses_the_response_with_out_of_range() -> None:
    service = GraphService(GraphStore(MemoryStore()))
    session, prompt = _turn(service)
    # Totals an older version left near the end of their range.
    full = replace(session.details_as(SessionDetails), token_usage=TokenUsage(INT64_MAX - 5))
    changes = StoreChanges(updated=[(session, replace(session, details=full))], time=1)
    service.store.commit(changes, sync=True)
    sequence = service.store.events.last_sequence
    with pytest.raises(OutOfRange, match="token totals of session"):
        service.create_node(_response(prompt, TokenUsage(10)))
    assert service.store.events.last_sequence == sequence
    service.create_node(_response(prompt, TokenUsage(5)))  # what still fits is taken
    _, other_prompt = _turn(service)
    service.create_node(_response(other_prompt, TokenUsage(10)))  # other sessions go on


def test_graph_counts_at_their_end_stay_there_and_writes_go_on() -> None:
    """A data directory whose token count an older version left at the int64 maximum."""
    kv = MemoryStore()
    service = GraphService(GraphStore(kv))
    _, prompt = _turn(service)
    kv.write([(keys.CF_META, keys.counter_key("tokens/prompt"), INT64_MAX.to_bytes(8))], sync=True)
    service = GraphService(GraphStore(kv))
    service.create_node(_response(prompt, TokenUsage(7, 3)))
    assert service.store.counts().tokens.prompt_tokens == INT64_MAX
    assert GraphStore(kv).counts().tokens == TokenUsage(INT64_MAX, 3, 10)


def test_add_response_refuses_counts_past_the_limit_and_later_ones_still_work(
    start_inprocess: Start,
) -> None:
    server = start_inprocess()
    with grpc.insecure_channel(f"127.0.0.1:{server.port}") as channel:
        stub = MemoryGraphServiceStub(channel)
        session = stub.CreateSession(pb.CreateSessionRequest())
        prompt = stub.AddPrompt(pb.AddPromptRequest(session_id=session.id, content="q"))
        for usage in (
            pb.TokenUsage(prompt_tokens=INT64_MAX),
            pb.TokenUsage(completion_tokens=2**32 + 1),
            pb.TokenUsage(total_tokens=-3),
        ):
            with pytest.raises(grpc.RpcError) as info:
                stub.AddResponse(
                    pb.AddResponseRequest(prompt_id=prompt.id, content="a", token_usage=usage)
                )
            assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
            assert "token" in info.value.details()
        ok = pb.TokenUsage(prompt_tokens=2**32, completion_tokens=2**32)
        reply = stub.AddResponse(
            pb.AddResponseRequest(prompt_id=prompt.id, content="a", token_usage=ok)
        )
        assert reply.response.token_usage.total_tokens == 2**33
        assert (
            stub.GetSession(pb.GetSessionRequest(session_id=session.id)).token_usage.total_tokens
            == 2**33
        )


def test_restart_finds_the_counts_it_left_and_takes_responses(start_inprocess: Start) -> None:
    server = start_inprocess(max_response_tokens=1000)
    with grpc.insecure_channel(f"127.0.0.1:{server.port}") as channel:
        stub = MemoryGraphServiceStub(channel)
        session = stub.CreateSession(pb.CreateSessionRequest())
        prompt = stub.AddPrompt(pb.AddPromptRequest(session_id=session.id, content="q"))
        with pytest.raises(grpc.RpcError) as info:
            stub.AddResponse(
                pb.AddResponseRequest(
                    prompt_id=prompt.id, content="a", token_usage=pb.TokenUsage(prompt_tokens=1001)
                )
            )
        assert "prompt_tokens is 1001; the limit is 1000" in info.value.details()
    server.stop(grace=1)
    server = start_inprocess(max_response_tokens=1000)
    with grpc.insecure_channel(f"127.0.0.1:{server.port}") as channel:
        stub = MemoryGraphServiceStub(channel)
        usage = pb.TokenUsage(prompt_tokens=1000, completion_tokens=1000)
        stub.AddResponse(pb.AddResponseRequest(prompt_id=prompt.id, content="a", token_usage=usage))
        metrics = stub.GetMetrics(pb.GetMetricsRequest())
        assert metrics.token_usage.total_tokens == 2000


def test_restore_refuses_counts_that_live_writes_refuse() -> None:
    service = GraphService(GraphStore(MemoryStore()))
    session, prompt = _turn(service)
    service.create_node(_response(prompt, TokenUsage(3, 4)))
    export = service.archive.export_session(session.id)
    service.archive.archive_session(session.id, content_sha256=export.sha256())
    counts = service.store.counts()
    response = next(n for n in export.nodes if n.kind is NodeKind.RESPONSE)
    details = replace(
        response.details_as(ResponseDetails), token_usage=TokenUsage(INT64_MAX, 0, INT64_MAX)
    )
    crafted = replace(
        export,
        nodes=[n if n is not response else replace(n, details=details) for n in export.nodes],
    )
    for bad in (crafted, replace(export, session=_with_totals(export.session, -1))):
        with pytest.raises(InvalidArgument, match="token"):
            service.archive.restore_session(decode_export(bad.encode()))
    assert service.store.counts() == counts
    assert service.store.get_node(session.id) is None


def _with_totals(session: Node, total: int) -> Node:
    details = replace(session.details_as(SessionDetails), token_usage=TokenUsage(0, 0, total))
    return replace(session, details=details)
