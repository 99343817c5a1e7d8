"""Streams whose client never reads: what an event subscriber buffers is bounded in bytes, and
once a send to any stream (events, queries, exports) has waited for the write timeout the stream
is ended, freeing its slot, its thread and its buffer. Health keeps answering, and the server's
memory stays under a stated bound."""

from __future__ import annotations

import re
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path

import grpc
import pytest
from memorygraph.model import (
    Event,
    EventType,
    Node,
    NodeKind,
    ToolInvocationDetails,
    new_id,
)
from memorygraph.server import RunningServer
from memorygraph.sizes import held_bytes
from memorygraph.v1 import graph_pb2 as pb
from memorygraph.v1.graph_pb2_grpc import MemoryGraphServiceStub
from prometheus_client import REGISTRY

from .abuse_support import MiB, Prober, peak_growth, wait_for
from .conftest import ServerProcess

Start = Callable[..., RunningServer]


def _silent_subscriber(stub: MemoryGraphServiceStub, method: str, session_id: str) -> grpc.Call:
    """A subscription whose client never asks for a message (a sync gRPC client reads a
    stream only when it is iterated)."""
    if method == "SubscribeToSession":
        call: grpc.Call = stub.SubscribeToSession(
            pb.SubscribeToSessionRequest(session_id=session_id)
        )
    else:
        call = stub.StreamEvents(pb.StreamEventsRequest())
    return call


def _write(stub: MemoryGraphServiceStub, session_id: str, count: int, size: int) -> None:
    for i in range(count):
        content = f"{i:08d}" + "x" * (size - 8)
        stub.AddPrompt(pb.AddPromptRequest(session_id=session_id, content=content), timeout=10)


@pytest.mark.one_process
@pytest.mark.parametrize("method", ["StreamEvents", "SubscribeToSession"])
def test_subscribers_that_never_read_are_ended_and_free_their_slots(
    start_inprocess: Start, method: str
) -> None:
    server = start_inprocess(
        max_streams=2,
        max_open_streams=1,
        max_workers=6,
        stream_write_timeout_seconds=1.0,
        event_buffer_bytes=2 * MiB,
    )
    address = f"127.0.0.1:{server.port}"
    buffered: list[int] = []

    def sample() -> None:
        buffered.append(max(server.hub.buffered_bytes(), default=0))

    with (
        grpc.insecure_channel(address) as silent,
        grpc.insecure_channel(address) as user,
        Prober(address, sample) as prober,
    ):
        stub = MemoryGraphServiceStub(user)
        session = stub.CreateSession(pb.CreateSessionRequest(), timeout=5)
        quiet = MemoryGraphServiceStub(silent)
        stuck = [_silent_subscriber(quiet, method, session.id) for _ in range(2)]
        wait_for(lambda: server.hub.subscriber_count == 2, 5, "the subscribers did not start")
        with pytest.raises(grpc.RpcError) as refused:  # both slots are taken
            next(stub.StreamEvents(pb.StreamEventsRequest(), timeout=5))
        assert refused.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED

        # 24 MiB of events: far more than the flow-control windows and the buffers take.
        _write(stub, session.id, 48, 512 << 10)
        wait_for(lambda: server.hub.subscriber_count == 0, 15, "the stuck subscribers stayed")
        sample()
        for call in stuck:
            with pytest.raises(grpc.RpcError) as ended:
                for _ in call:  # what reached the client before the end, then the status
                    pass
            assert ended.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
            assert "took no message for 1s" in ended.value.details()
            assert "from_sequence" in ended.value.details()

        # Their slots are free again: two new subscribers are served.
        fresh = [
            stub.SubscribeToSession(pb.SubscribeToSessionRequest(session_id=session.id), timeout=10)
            for _ in range(2)
        ]
        wait_for(lambda: server.hub.subscriber_count == 2, 5, "the new subscribers did not start")
        _write(stub, session.id, 1, 100)
        assert all(next(call).type == pb.EVENT_TYPE_NODE_CREATED for call in fresh)
        for call in fresh:
            call.cancel()
    # A buffer holds at most its bytes and one event more, whatever the client does.
    assert buffered and max(buffered) <= 2 * MiB + (600 << 10)
    assert prober.answers and not prober.failures


def _stalled() -> float:
    """Streams ended for not reading, of this process's servers, StreamQuery and ExportSession."""
    return sum(
        REGISTRY.get_sample_value("memorygraph_streams_stalled_total", {"method": m}) or 0.0
        for m in ("StreamQuery", "ExportSession")
    )


@pytest.mark.one_process(
    "a forwarded stream is buffered at two hops: what 24 MiB fills on one may pass through two"
)
def test_query_and_export_streams_that_are_never_read_are_ended(start_inprocess: Start) -> None:
    """The server's default deadline is checked between pieces of work, not during a send that
    flow control holds up: without the write timeout these calls kept their worker threads for
    as long as their client stayed connected."""
    server = start_inprocess(stream_write_timeout_seconds=1.0)
    address = f"127.0.0.1:{server.port}"
    large = [("grpc.max_receive_message_length", 64 * MiB)]  # a batch may take the most it can
    with (
        grpc.insecure_channel(address, options=large) as silent,
        grpc.insecure_channel(address, options=large) as user,
    ):
        stub = MemoryGraphServiceStub(user)
        session = stub.CreateSession(pb.CreateSessionRequest(), timeout=5)
        # 24 MiB of prompts: far more than the flow-control windows take.
        _write(stub, session.id, 48, 512 << 10)
        quiet = MemoryGraphServiceStub(silent)
        query = pb.StreamQueryRequest(filter=pb.QueryFilter(session_id=session.id))
        before = _stalled()
        stuck = [
            quiet.StreamQuery(query),
            quiet.StreamQuery(query),
            quiet.ExportSession(pb.ExportSessionRequest(session_id=session.id)),
        ]
        # (>=: with workers, the worker a forwarded stream reads from may end its side too)
        wait_for(lambda: _stalled() >= before + 3, 15, "the unread streams stayed")
        for call, hint in zip(stuck, ["query again", "query again", "export again"], strict=True):
            with pytest.raises(grpc.RpcError) as ended:
                for _ in call:  # what reached the client before the end, then the status
                    pass
            assert ended.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
            assert "took no message for 1s" in ended.value.details()
            assert hint in ended.value.details()
        # A client that reads gets the whole session.
        read = sum(len(b.nodes) for b in stub.StreamQuery(query, timeout=30))
        assert read == 48


def test_a_subscriber_that_reads_slowly_but_steadily_is_not_ended(start_inprocess: Start) -> None:
    server = start_inprocess(stream_write_timeout_seconds=0.5)
    with grpc.insecure_channel(f"127.0.0.1:{server.port}") as channel:
        stub = MemoryGraphServiceStub(channel)
        session = stub.CreateSession(pb.CreateSessionRequest(), timeout=5)
        stream = stub.SubscribeToSession(
            pb.SubscribeToSessionRequest(session_id=session.id, from_sequence=1), timeout=30
        )
        received = [next(stream)]
        _write(stub, session.id, 10, 100)
        for _ in range(10 * 3):  # each prompt: its node, its belongs_to and (but the first) follows
            time.sleep(0.05)
            received.append(next(stream))
            if len(received) == 1 + 10 * 3 - 1:
                break
        stream.cancel()
    assert len(received) == 30


def _subscribers(server: ServerProcess) -> float:
    with urllib.request.urlopen(
        f"http://127.0.0.1:{server.metrics_port}/metrics", timeout=5
    ) as reply:
        text = reply.read().decode()
    found = re.search(r"^memorygraph_event_subscribers (\S+)$", text, re.MULTILINE)
    assert found is not None
    return float(found.group(1))


@pytest.mark.slow
def test_subscribers_that_never_read_keep_the_servers_memory_bounded(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """128 MiB of events written with no subscriber, then 128 MiB more with eight that never
    read: the second time the server's memory rises by no more than their buffers (4 MiB
    each) and the messages under way. Measured: 0-20 MiB more than the first time; without
    the bounds, every subscriber held every event until it disconnected (170 MiB more)."""
    # glibc keeps freed blocks of a few hundred KiB for reuse: mapped on their own, they go
    # back to the system at once, and the RSS shows what the server holds.
    monkeypatch.setenv("MALLOC_MMAP_THRESHOLD_", "131072")
    config = tmp_path / "config.yaml"
    config.write_text(
        "durability: fast\nmax_streams: 8\nmax_workers: 16\n"
        f"event_buffer_bytes: {4 * MiB}\nstream_write_timeout_seconds: 2\n"
    )
    server = ServerProcess(tmp_path / "data", "--config", str(config)).start()
    assert server.proc is not None
    pid = server.proc.pid
    try:
        with (
            grpc.insecure_channel(server.address) as silent,
            grpc.insecure_channel(server.address) as user,
        ):
            stub = MemoryGraphServiceStub(user)
            session = stub.CreateSession(pb.CreateSessionRequest(), timeout=5)
            _write(stub, session.id, 64, 512 << 10)  # the store's memtables, filled once
            alone = peak_growth(pid, lambda: _write(stub, session.id, 256, 512 << 10))
            quiet = MemoryGraphServiceStub(silent)
            stuck = [_silent_subscriber(quiet, "StreamEvents", "") for _ in range(8)]
            wait_for(lambda: _subscribers(server) == 8, 10, "the subscribers did not start")
            with Prober(server.address) as prober:
                watched = peak_growth(pid, lambda: _write(stub, session.id, 256, 512 << 10))
                wait_for(lambda: _subscribers(server) == 0, 20, "the stuck subscribers stayed")
            for call in stuck:
                with pytest.raises(grpc.RpcError) as ended:
                    for _ in call:
                        pass
                assert ended.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
            assert prober.answers and not prober.failures
    finally:
        server.stop()
    extra = watched - alone
    assert extra < 64 * MiB, f"8 stuck subscribers took {extra / MiB:.0f} MiB more"


def test_an_events_size_counts_every_text_it_holds() -> None:
    """Buffers are bounded by what events hold, whatever field holds it."""
    result = "r" * (3 * MiB)
    node = Node(
        new_id(),
        NodeKind.TOOL_INVOCATION,
        new_id(),
        details=ToolInvocationDetails(tool_name="t", result=result),
    )
    event = Event(1, EventType.NODE_CREATED, 0, node.session_id, node=node)
    assert 3 * MiB < held_bytes(event) < 3 * MiB + 4096
