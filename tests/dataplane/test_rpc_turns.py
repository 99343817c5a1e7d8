"""RecordTurn: a whole turn (prompt, response, tool invocations) in one call, all or nothing."""

from __future__ import annotations

import grpc
from memorygraph.model import id_tag, parse_id
from memorygraph.v1 import graph_pb2 as pb

from .rpc_support import Stub, edge_set, status_of


def _turn(session_id: str, *tools: str, content: str = "What is 2+2?") -> pb.RecordTurnRequest:
    return pb.RecordTurnRequest(
        prompt=pb.AddPromptRequest(session_id=session_id, content=content, model="m1"),
        response=pb.AddResponseRequest(
            content="4",
            model="m1",
            token_usage=pb.TokenUsage(prompt_tokens=7, completion_tokens=1),
            finish_reason="stop",
        ),
        tool_invocations=[
            pb.AddToolInvocationRequest(
                tool_name=name, arguments="{}", result="ok", status=pb.TOOL_STATUS_SUCCEEDED
            )
            for name in tools
        ],
    )


def _nodes_of(stub: Stub, session_id: str) -> list[pb.Node]:
    found = stub.Query(pb.QueryRequest(filter=pb.QueryFilter(session_id=session_id)))
    return [n for n in found.nodes if n.kind != pb.NODE_KIND_SESSION]


def test_a_turn_records_its_nodes_edges_and_token_totals(stub: Stub) -> None:
    session = stub.CreateSession(pb.CreateSessionRequest(title="support chat"))
    first = stub.RecordTurn(_turn(session.id, "calculator", "search"))
    second = stub.RecordTurn(_turn(session.id, content="And 3+3?"))

    prompt, response = first.prompt, first.response
    assert prompt.kind == pb.NODE_KIND_PROMPT and prompt.content == "What is 2+2?"
    assert prompt.prompt.model == "m1" and prompt.session_id == session.id
    assert response.response.prompt_id == prompt.id and response.session_id == session.id
    assert response.response.token_usage.total_tokens == 8
    assert [t.tool_invocation.tool_name for t in first.tool_invocations] == [
        "calculator",
        "search",
    ]
    assert all(t.tool_invocation.response_id == response.id for t in first.tool_invocations)
    # Every id is on the session's shard, as those of AddPrompt and AddResponse are.
    tags = {id_tag(parse_id(n.id, "id")) for n in [prompt, response, *first.tool_invocations]}
    assert tags == {id_tag(parse_id(session.id, "id"))}
    # What the answer says is what was stored.
    for node in [prompt, response, *first.tool_invocations]:
        assert stub.GetNode(pb.GetNodeRequest(node_id=node.id)) == node

    edges = stub.GetEdges(pb.GetEdgesRequest(node_id=prompt.id, direction=pb.DIRECTION_BOTH))
    assert edge_set(edges.edges) == {
        (prompt.id, pb.EDGE_KIND_BELONGS_TO, session.id),
        (response.id, pb.EDGE_KIND_RESPONDS_TO, prompt.id),
        (second.prompt.id, pb.EDGE_KIND_FOLLOWS, prompt.id),
    }
    for tool in first.tool_invocations:
        tool_edges = stub.GetEdges(pb.GetEdgesRequest(node_id=tool.id))
        assert edge_set(tool_edges.edges) == {(tool.id, pb.EDGE_KIND_INVOKES, response.id)}
    assert not second.tool_invocations

    stored = stub.GetSession(pb.GetSessionRequest(session_id=session.id))
    assert stored.token_usage == pb.TokenUsage(
        prompt_tokens=14, completion_tokens=2, total_tokens=16
    )
    kinds = [n.kind for n in _nodes_of(stub, session.id)]
    assert kinds.count(pb.NODE_KIND_PROMPT) == 2 and kinds.count(pb.NODE_KIND_TOOL_INVOCATION) == 2


def test_a_turn_sends_its_events_in_order(stub: Stub) -> None:
    session = stub.CreateSession(pb.CreateSessionRequest())
    recorded = stub.RecordTurn(_turn(session.id, "search"))
    events = stub.SubscribeToSession(
        pb.SubscribeToSessionRequest(session_id=session.id, from_sequence=1), timeout=5
    )
    created: list[str] = []
    for event in events:
        if event.type == pb.EVENT_TYPE_NODE_CREATED:
            created.append(event.node.id)
        if len(created) == 3:
            events.cancel()
            break
    turn_ids = [recorded.prompt.id, recorded.response.id, recorded.tool_invocations[0].id]
    assert created == turn_ids


def test_a_refused_part_refuses_the_whole_turn(stub: Stub) -> None:
    session = stub.CreateSession(pb.CreateSessionRequest())
    bad_tool = _turn(session.id, "calculator", "")  # the second invocation has no tool name
    code, details = status_of(lambda: stub.RecordTurn(bad_tool))
    assert code == grpc.StatusCode.INVALID_ARGUMENT
    assert details == "tool_invocations[1]: tool_name is required for a tool invocation"

    no_content = _turn(session.id)
    no_content.response.content = " "
    code, details = status_of(lambda: stub.RecordTurn(no_content))
    assert (code, details) == (
        grpc.StatusCode.INVALID_ARGUMENT,
        "response: content is required for a response",
    )
    assert _nodes_of(stub, session.id) == []
    stored = stub.GetSession(pb.GetSessionRequest(session_id=session.id))
    assert stored.token_usage == pb.TokenUsage()


def test_bad_requests_are_refused_with_the_field_they_concern(stub: Stub) -> None:
    session = stub.CreateSession(pb.CreateSessionRequest())
    named = _turn(session.id)
    named.response.prompt_id = session.id
    tool_named = _turn(session.id, "search")
    tool_named.tool_invocations[0].response_id = session.id
    cases = {
        "prompt is required": pb.RecordTurnRequest(response=_turn(session.id).response),
        "response is required: record a prompt alone with AddPrompt": pb.RecordTurnRequest(
            prompt=_turn(session.id).prompt
        ),
        "response.prompt_id must be empty: it answers the turn's prompt": named,
        "tool_invocations[0].response_id must be empty: the turn's response made it": (tool_named),
        "prompt: session_id 'nope' is not a valid id: expected a UUID such as "
        "'0190a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5b'": _turn("nope"),
        "at most 1000 tool invocations per turn": _turn(session.id, *["t"] * 1001),
    }
    for message, request in cases.items():
        code, details = status_of(lambda r=request: stub.RecordTurn(r))  # type: ignore[misc]
        assert (code, details) == (grpc.StatusCode.INVALID_ARGUMENT, message)
    assert _nodes_of(stub, session.id) == []


def test_a_turn_in_a_missing_or_closed_session_is_refused(stub: Stub) -> None:
    missing = "0190a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5b"
    code, details = status_of(lambda: stub.RecordTurn(_turn(missing)))
    assert code == grpc.StatusCode.NOT_FOUND and details.startswith("prompt: ")
    session = stub.CreateSession(pb.CreateSessionRequest())
    stub.CloseSession(pb.CloseSessionRequest(session_id=session.id))
    code, details = status_of(lambda: stub.RecordTurn(_turn(session.id)))
    assert code == grpc.StatusCode.FAILED_PRECONDITION
    assert _nodes_of(stub, session.id) == []
