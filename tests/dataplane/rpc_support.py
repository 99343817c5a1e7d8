"""Helpers of the RPC tests: the stub type, a refused call's status, one LLM turn, many prompts,
edge tuples, a routing client connected to every worker."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import grpc
import pytest
from memorygraph.client import Client
from memorygraph.v1 import graph_pb2 as pb
from memorygraph.v1.graph_pb2_grpc import MemoryGraphServiceStub

Stub = MemoryGraphServiceStub


def status_of(call: Callable[[], Any]) -> tuple[grpc.StatusCode, str]:
    with pytest.raises(grpc.RpcError) as info:
        call()
    return info.value.code(), info.value.details()


def turn(stub: Stub) -> tuple[pb.Session, pb.Node, pb.Node, pb.Node]:
    session = stub.CreateSession(pb.CreateSessionRequest(title="support chat", user_id="u1"))
    prompt = stub.AddPrompt(
        pb.AddPromptRequest(session_id=session.id, content="What is 2+2?", model="m1")
    )
    response = stub.AddResponse(
        pb.AddResponseRequest(
            prompt_id=prompt.id,
            content="4",
            model="m1",
            token_usage=pb.TokenUsage(prompt_tokens=7, completion_tokens=1),
        )
    )
    tool = stub.AddToolInvocation(
        pb.AddToolInvocationRequest(
            response_id=response.id,
            tool_name="calculator",
            arguments='{"expr": "2+2"}',
            result="4",
            status=pb.TOOL_STATUS_SUCCEEDED,
        )
    )
    return session, prompt, response, tool


def add_prompts(stub: Stub, session_id: str, count: int, batch: int | None = None) -> None:
    """`count` prompts `p0`, `p1`, ... in the session by BatchCreateNodes: `batch` a call, or
    all of them in one."""
    size = batch or max(count, 1)
    for start in range(0, count, size):
        stub.BatchCreateNodes(
            pb.BatchCreateNodesRequest(
                requests=[
                    pb.CreateNodeRequest(
                        kind=pb.NODE_KIND_PROMPT, session_id=session_id, content=f"p{i}"
                    )
                    for i in range(start, min(start + size, count))
                ]
            )
        )


def edge_set(edges: Any) -> set[tuple[str, int, str]]:
    return {(e.source_id, e.kind, e.target_id) for e in edges}


def connect_routes(client: Client, workers: int = 2) -> None:
    """Wait until `client` routes calls straight to each of `workers` workers: it has the map
    and its channel to every worker is connected (until then calls go to the graph)."""
    deadline = time.monotonic() + 10
    while len(client._workers) < workers or any(
        worker.stub_if_ready() is None for worker in client._workers.values()
    ):
        assert time.monotonic() < deadline, "the client never connected to every worker"
        client.get_session(client.create_session().id)
        time.sleep(0.01)
