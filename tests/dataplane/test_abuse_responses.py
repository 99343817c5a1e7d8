"""Answers larger than a message: a write whose answer could not be sent is refused before it is
written, so that a client retrying it stores nothing twice."""

from __future__ import annotations

from collections.abc import Callable

import grpc
import pytest
from memorygraph.model import NodeKind
from memorygraph.server import RunningServer
from memorygraph.v1 import graph_pb2 as pb
from memorygraph.v1.graph_pb2_grpc import MemoryGraphServiceStub

Start = Callable[..., RunningServer]


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
