"""Refused and failing RPCs: the status of each bad input, INTERNAL errors, request ids."""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable
from typing import Any

import grpc
import pytest
from google.protobuf.field_mask_pb2 import FieldMask
from google.protobuf.timestamp_pb2 import Timestamp
from memorygraph.logs import LazyRequestId, current_request_id, request_id_var
from memorygraph.server import RunningServer
from memorygraph.servicers.handlers import HandlerWrapper
from memorygraph.v1 import graph_pb2 as pb

from .rpc_support import Stub, status_of, turn


def _bad_requests(
    stub: Stub, session: pb.Session, prompt: pb.Node
) -> list[tuple[str, Callable[[], Any], grpc.StatusCode, str]]:
    missing = str(uuid.uuid4())
    code = grpc.StatusCode
    return [
        (
            "bad id",
            lambda: stub.GetNode(pb.GetNodeRequest(node_id="not-a-uuid")),
            code.INVALID_ARGUMENT,
            "not a valid id",
        ),
        (
            "empty id",
            lambda: stub.GetSession(pb.GetSessionRequest()),
            code.INVALID_ARGUMENT,
            "session_id is required",
        ),
        (
            "empty content",
            lambda: stub.AddPrompt(pb.AddPromptRequest(session_id=session.id, content="  ")),
            code.INVALID_ARGUMENT,
            "content is required",
        ),
        (
            "unknown enum",
            lambda: stub.CreateNode(
                pb.CreateNodeRequest(kind=42, session_id=session.id, content="x")
            ),  # type: ignore[arg-type]
            code.INVALID_ARGUMENT,
            "not a known node kind",
        ),
        (
            "unspecified enum",
            lambda: stub.CreateEdge(
                pb.CreateEdgeRequest(source_id=prompt.id, target_id=session.id)
            ),
            code.INVALID_ARGUMENT,
            "kind is required",
        ),
        (
            "negative tokens",
            lambda: stub.AddResponse(
                pb.AddResponseRequest(
                    prompt_id=prompt.id, content="x", token_usage=pb.TokenUsage(prompt_tokens=-1)
                )
            ),
            code.INVALID_ARGUMENT,
            "negative",
        ),
        (
            "bad page token",
            lambda: stub.Query(pb.QueryRequest(page_token="garbage")),
            code.INVALID_ARGUMENT,
            "page_token",
        ),
        (
            "bad mask",
            lambda: stub.UpdateNode(
                pb.UpdateNodeRequest(node_id=prompt.id, update_mask=FieldMask(paths=["kind"]))
            ),
            code.INVALID_ARGUMENT,
            "cannot be updated",
        ),
        (
            "reversed time range",
            lambda: stub.Query(
                pb.QueryRequest(
                    filter=pb.QueryFilter(
                        start_time=Timestamp(seconds=20), end_time=Timestamp(seconds=10)
                    )
                )
            ),
            code.INVALID_ARGUMENT,
            "end_time",
        ),
        (
            "depth over cap",
            lambda: stub.Traverse(pb.TraverseRequest(start_node_id=prompt.id, max_depth=11)),
            code.INVALID_ARGUMENT,
            "max_depth",
        ),
        (
            "missing node",
            lambda: stub.GetNode(pb.GetNodeRequest(node_id=missing)),
            code.NOT_FOUND,
            missing,
        ),
        (
            "missing prompt",
            lambda: stub.AddResponse(pb.AddResponseRequest(prompt_id=missing, content="x")),
            code.NOT_FOUND,
            "prompt",
        ),
        (
            "wrong kind",
            lambda: stub.AddResponse(pb.AddResponseRequest(prompt_id=session.id, content="x")),
            code.NOT_FOUND,
            "that id is a session",
        ),
        (
            "duplicate session id",
            lambda: stub.CreateSession(pb.CreateSessionRequest(session_id=session.id)),
            code.ALREADY_EXISTS,
            "already exists",
        ),
        (
            "duplicate edge",
            lambda: stub.CreateEdge(
                pb.CreateEdgeRequest(
                    source_id=prompt.id, target_id=session.id, kind=pb.EDGE_KIND_BELONGS_TO
                )
            ),
            code.ALREADY_EXISTS,
            "already exists",
        ),
        (
            "session via DeleteNode",
            lambda: stub.DeleteNode(pb.DeleteNodeRequest(node_id=session.id)),
            code.FAILED_PRECONDITION,
            "DeleteSession",
        ),
        (
            "batch with one bad item",
            lambda: stub.BatchCreateNodes(
                pb.BatchCreateNodesRequest(
                    requests=[
                        pb.CreateNodeRequest(
                            kind=pb.NODE_KIND_PROMPT, session_id=session.id, content="fine"
                        ),
                        pb.CreateNodeRequest(
                            kind=pb.NODE_KIND_PROMPT, session_id=session.id, content=""
                        ),
                    ]
                )
            ),
            code.INVALID_ARGUMENT,
            "requests[1]",
        ),
    ]


def test_every_bad_input_class_returns_its_status_and_changes_nothing(stub: Stub) -> None:
    session, prompt, _, _ = turn(stub)
    before = stub.GetMetrics(pb.GetMetricsRequest())
    snapshot = stub.Query(pb.QueryRequest(filter=pb.QueryFilter(session_id=session.id)))
    for name, call, expected, fragment in _bad_requests(stub, session, prompt):
        code, message = status_of(call)
        assert (code, fragment in message) == (expected, True), f"{name}: {code} {message}"
    after = stub.GetMetrics(pb.GetMetricsRequest())
    assert after.nodes_by_kind == before.nodes_by_kind
    assert after.edges == before.edges and after.token_usage == before.token_usage
    assert stub.Query(pb.QueryRequest(filter=pb.QueryFilter(session_id=session.id))) == snapshot


@pytest.mark.one_process
def test_unexpected_errors_become_internal_with_request_id(
    stub: Stub, inprocess_server: RunningServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    session = stub.CreateSession(pb.CreateSessionRequest())

    def explode(*args: Any, **kwargs: Any) -> None:
        raise RuntimeError("/secret/path/to/file.sst corrupted")

    monkeypatch.setattr(inprocess_server.store, "stage", explode)
    with pytest.raises(grpc.RpcError) as info:
        stub.AddPrompt(
            pb.AddPromptRequest(session_id=session.id, content="x"),
            metadata=(("x-request-id", "req-1234"),),
        )
    assert info.value.code() == grpc.StatusCode.INTERNAL
    assert info.value.details() == "internal error (request id req-1234)"
    assert "secret" not in info.value.debug_error_string()
    assert dict(info.value.trailing_metadata())["x-request-id"] == "req-1234"


def test_failed_calls_name_their_request_id_in_trailing_metadata(stub: Stub) -> None:
    with pytest.raises(grpc.RpcError) as info:
        stub.GetNode(pb.GetNodeRequest(node_id="not-an-id"))
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    generated = dict(info.value.trailing_metadata())["x-request-id"]
    assert len(generated) == 16 and int(generated, 16) >= 0
    with pytest.raises(grpc.RpcError) as info:
        stub.GetNode(pb.GetNodeRequest(node_id=""), metadata=(("x-request-id", "mine"),))
    assert dict(info.value.trailing_metadata())["x-request-id"] == "mine"
    with pytest.raises(grpc.RpcError) as info:
        list(stub.StreamQuery(pb.StreamQueryRequest(filter=pb.QueryFilter(session_id="bad"))))
    assert dict(info.value.trailing_metadata())["x-request-id"]


@pytest.mark.one_process
def test_log_lines_of_a_call_carry_its_request_id(
    stub: Stub, inprocess_server: RunningServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    session = stub.CreateSession(pb.CreateSessionRequest())
    seen: list[tuple[str, str]] = []

    class Recorder(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            seen.append((record.getMessage(), current_request_id()))

    def explode(*args: Any, **kwargs: Any) -> None:
        raise RuntimeError("disk on fire")

    monkeypatch.setattr(inprocess_server.store, "stage", explode)
    recorder = Recorder()
    logging.getLogger("memorygraph.rpc").addHandler(recorder)
    try:
        for metadata in ((("x-request-id", "turn-42"),), ()):
            with pytest.raises(grpc.RpcError) as info:
                stub.AddPrompt(
                    pb.AddPromptRequest(session_id=session.id, content="x"), metadata=metadata
                )
            assert info.value.code() == grpc.StatusCode.INTERNAL
    finally:
        logging.getLogger("memorygraph.rpc").removeHandler(recorder)
    given_id, made_id = [rid for message, rid in seen if "unexpected error" in message]
    assert given_id == "turn-42"
    assert len(made_id) == 16 and made_id != given_id
    # The id in the log line is the one the caller got back.
    assert made_id in info.value.details()
    assert dict(info.value.trailing_metadata())["x-request-id"] == made_id


def test_a_request_id_is_worked_out_once_and_only_when_asked_for() -> None:
    asked: list[int] = []

    def find() -> str:
        asked.append(1)
        return "abc"

    lazy = LazyRequestId(find)
    assert asked == []
    token = request_id_var.set(lazy)
    try:
        assert current_request_id() == "abc" and current_request_id() == "abc"
    finally:
        request_id_var.reset(token)
    assert asked == [1]
    assert current_request_id() == "-"


class _Context:
    """What the handler wrapper reads of a unary call's context."""

    def __init__(self, metadata: tuple[tuple[str, str], ...]) -> None:
        self.metadata = metadata

    def invocation_metadata(self) -> tuple[tuple[str, str], ...]:
        return self.metadata

    def time_remaining(self) -> float | None:
        return None

    def is_active(self) -> bool:
        return True


def test_the_request_id_belongs_to_its_call_only() -> None:
    seen: list[str] = []

    def behaviour(request: Any, context: Any) -> bytes:
        seen.append(current_request_id())
        return b""

    handler = grpc.unary_unary_rpc_method_handler(behaviour)
    wrapped = HandlerWrapper().wrap("/memorygraph.v1.MemoryGraphService/GetNode", handler)
    assert wrapped.unary_unary is not None
    wrapped.unary_unary(b"", _Context((("x-request-id", "mine"),)))
    assert current_request_id() == "-"  # not the call's any more, once it has ended
    wrapped.unary_unary(b"", _Context(()))
    wrapped.unary_unary(b"", _Context(()))
    assert seen[0] == "mine" and current_request_id() == "-"
    assert len({seen[1], seen[2]}) == 2 and all(len(made) == 16 for made in seen[1:])
