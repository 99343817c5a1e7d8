"""Helpers of the RPC tests: the stub type, a refused call's status, one LLM turn, edge tuples."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import grpc
import pytest
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


def edge_set(edges: Any) -> set[tuple[str, int, str]]:
    return {(e.source_id, e.kind, e.target_id) for e in edges}
