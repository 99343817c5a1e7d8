"""Limits and overload: refused fast and cleanly, the server stays healthy, deadlines stop work."""

from __future__ import annotations

import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import grpc
import pytest
from memorygraph.errors import InvalidArgument
from memorygraph.graph.checks import Limits
from memorygraph.model import NodeKind
from memorygraph.server import RunningServer
from memorygraph.v1 import graph_pb2 as pb
from memorygraph.v1.graph_pb2_grpc import MemoryGraphServiceStub

from .conftest import every_store
from .rpc_support import add_prompts

Start = Callable[..., RunningServer]


def connect(server: RunningServer) -> tuple[grpc.Channel, MemoryGraphServiceStub]:
    channel = grpc.insecure_channel(f"127.0.0.1:{server.port}")
    return channel, MemoryGraphServiceStub(channel)


def slow_down(monkeypatch: pytest.MonkeyPatch, target: Any, name: str, seconds: float) -> list[int]:
    """Make `target.name` sleep first; returns a list counting the calls."""
    original = getattr(target, name)
    calls: list[int] = []

    def slowed(*args: Any, **kwargs: Any) -> Any:
        calls.append(1)
        time.sleep(seconds)
        return original(*args, **kwargs)

    monkeypatch.setattr(target, name, slowed)
    return calls


def test_five_times_the_concurrency_cap_is_refused_fast_and_the_rest_served(
    start_inprocess: Start, monkeypatch: pytest.MonkeyPatch
) -> None:
    server = start_inprocess(max_concurrent_rpcs=4, max_workers=8, max_streams=2)
    channel, stub = connect(server)
    session = stub.CreateSession(pb.CreateSessionRequest())
    for store in every_store(server):  # the slow part: reading a node, on whichever worker
        slow_down(monkeypatch, store, "get_node", 0.5)
    outcomes: list[tuple[grpc.StatusCode, float]] = []

    def call() -> None:
        started = time.monotonic()
        try:
            stub.GetSession(pb.GetSessionRequest(session_id=session.id), timeout=10)
            outcomes.append((grpc.StatusCode.OK, time.monotonic() - started))
        except grpc.RpcError as exc:
            outcomes.append((exc.code(), time.monotonic() - started))

    with ThreadPoolExecutor(20) as pool:
        for _ in range(20):
            pool.submit(call)
    refused = [t for code, t in outcomes if code == grpc.StatusCode.RESOURCE_EXHAUSTED]
    served = [t for code, t in outcomes if code == grpc.StatusCode.OK]
    assert len(refused) + len(served) == 20
    assert len(served) >= 4 and len(refused) >= 10
    assert max(refused) < 0.4  # refused at once, not after waiting for a slot
    monkeypatch.undo()
    assert stub.Health(pb.HealthRequest(), timeout=5).status == pb.HealthResponse.STATUS_SERVING
    channel.close()


def test_oversized_messages_and_content_are_refused_and_change_nothing(
    start_inprocess: Start,
) -> None:
    server = start_inprocess(
        max_message_bytes=64 * 1024, max_content_bytes=1000, max_metadata_bytes=100
    )
    channel, stub = connect(server)
    session = stub.CreateSession(pb.CreateSessionRequest())
    with pytest.raises(grpc.RpcError) as info:
        stub.AddPrompt(pb.AddPromptRequest(session_id=session.id, content="x" * 100_000))
    assert info.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    with pytest.raises(grpc.RpcError) as info:
        stub.AddPrompt(pb.AddPromptRequest(session_id=session.id, content="é" * 501))
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "1002 bytes; the limit is 1000" in info.value.details()
    with pytest.raises(grpc.RpcError) as info:
        stub.AddPrompt(
            pb.AddPromptRequest(session_id=session.id, content="ok", metadata={"k": "v" * 200})
        )
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert server.store.counts().nodes[NodeKind.PROMPT] == 0
    stub.AddPrompt(pb.AddPromptRequest(session_id=session.id, content="x" * 1000))
    channel.close()


def test_open_streams_are_capped(start_inprocess: Start) -> None:
    server = start_inprocess(max_streams=2)
    channel, stub = connect(server)
    stub.CreateSession(pb.CreateSessionRequest())
    open_streams = [stub.StreamEvents(pb.StreamEventsRequest(from_sequence=1)) for _ in range(2)]
    for stream in open_streams:
        next(stream)
    with pytest.raises(grpc.RpcError) as info:
        next(stub.StreamEvents(pb.StreamEventsRequest(from_sequence=1)))
    assert info.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert "too many open streams" in info.value.details()
    open_streams[0].cancel()
    deadline = time.monotonic() + 5
    while True:  # the slot frees once the server notices the cancellation
        try:
            third = stub.StreamEvents(pb.StreamEventsRequest(from_sequence=1))
            next(third)
            third.cancel()
            break
        except grpc.RpcError:
            assert time.monotonic() < deadline
            time.sleep(0.1)
    open_streams[1].cancel()
    channel.close()


def _session_with_prompts(stub: MemoryGraphServiceStub, count: int) -> str:
    session = stub.CreateSession(pb.CreateSessionRequest())
    add_prompts(stub, session.id, count)
    return session.id


@pytest.mark.one_process
def test_server_default_deadline_stops_long_work(
    start_inprocess: Start, monkeypatch: pytest.MonkeyPatch
) -> None:
    server = start_inprocess(default_deadline_seconds=0.3)
    channel, stub = connect(server)
    session_id = _session_with_prompts(stub, 300)
    calls = slow_down(monkeypatch, server.store, "edges", 0.005)
    started = time.monotonic()
    with pytest.raises(grpc.RpcError) as info:
        list(stub.ExportSession(pb.ExportSessionRequest(session_id=session_id)))
    assert info.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED
    assert time.monotonic() - started < 3
    assert len(calls) < 300
    monkeypatch.undo()
    assert stub.GetSession(pb.GetSessionRequest(session_id=session_id)).id == session_id
    assert server.store.counts().nodes[NodeKind.PROMPT] == 300
    channel.close()


@pytest.mark.one_process
def test_client_deadline_cancels_server_work(
    start_inprocess: Start, monkeypatch: pytest.MonkeyPatch
) -> None:
    server = start_inprocess()
    channel, stub = connect(server)
    session_id = _session_with_prompts(stub, 300)
    calls = slow_down(monkeypatch, server.store, "edges", 0.01)
    with pytest.raises(grpc.RpcError) as info:
        list(stub.ExportSession(pb.ExportSessionRequest(session_id=session_id), timeout=0.3))
    assert info.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED
    time.sleep(1.0)
    stopped_at = len(calls)
    time.sleep(0.5)
    assert len(calls) == stopped_at < 300  # the server gave up, it is not still working
    monkeypatch.undo()
    assert stub.GetSession(pb.GetSessionRequest(session_id=session_id)).id == session_id
    channel.close()


def test_stream_query_stops_when_the_client_goes_away(
    start_inprocess: Start, monkeypatch: pytest.MonkeyPatch
) -> None:
    server = start_inprocess()
    channel, stub = connect(server)
    session_id = _session_with_prompts(stub, 2000)
    calls = slow_down(monkeypatch, server.store, "get_nodes", 0.01)
    stream = stub.StreamQuery(
        pb.StreamQueryRequest(filter=pb.QueryFilter(session_id=session_id), batch_size=10)
    )
    next(stream)
    stream.cancel()
    time.sleep(0.5)
    stopped_at = len(calls)
    time.sleep(0.3)
    assert len(calls) == stopped_at < 200
    channel.close()


def test_content_limit_counts_utf8_bytes_not_characters() -> None:
    limits = Limits(max_content_bytes=12)
    limits.check("x" * 12)
    limits.check("é" * 6)  # 12 bytes
    with pytest.raises(InvalidArgument, match="content is 14 bytes; the limit is 12 bytes"):
        limits.check("é" * 7)
    with pytest.raises(InvalidArgument, match="content is 16 bytes"):
        limits.check("😀" * 4)
