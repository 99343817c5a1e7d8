"""Every MemoryGraphService RPC through the generated client against a real server (in-process,
RocksDB in a temporary directory)."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Any

import grpc
import pytest
from google.protobuf.field_mask_pb2 import FieldMask
from google.protobuf.timestamp_pb2 import Timestamp
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc
from memorygraph.server import RunningServer
from memorygraph.store.keys import SCHEMA_VERSION
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


def test_llm_turn_records_nodes_and_automatic_edges(stub: Stub) -> None:
    session, prompt, response, tool = turn(stub)
    second = stub.AddPrompt(pb.AddPromptRequest(session_id=session.id, content="And 3+3?"))

    assert response.session_id == session.id
    assert response.response.prompt_id == prompt.id
    assert response.response.token_usage.total_tokens == 8
    assert tool.tool_invocation.status == pb.TOOL_STATUS_SUCCEEDED

    everything = stub.GetEdges(pb.GetEdgesRequest(node_id=prompt.id, direction=pb.DIRECTION_BOTH))
    assert edge_set(everything.edges) == {
        (prompt.id, pb.EDGE_KIND_BELONGS_TO, session.id),
        (response.id, pb.EDGE_KIND_RESPONDS_TO, prompt.id),
        (second.id, pb.EDGE_KIND_FOLLOWS, prompt.id),
    }
    tool_edges = stub.GetEdges(pb.GetEdgesRequest(node_id=tool.id))
    assert edge_set(tool_edges.edges) == {(tool.id, pb.EDGE_KIND_INVOKES, response.id)}

    stored = stub.GetSession(pb.GetSessionRequest(session_id=session.id))
    assert stored.token_usage == pb.TokenUsage(prompt_tokens=7, completion_tokens=1, total_tokens=8)
    assert stored.state == pb.SESSION_STATE_ACTIVE


def test_session_lifecycle_and_listing(stub: Stub) -> None:
    ids = [stub.CreateSession(pb.CreateSessionRequest(user_id=f"u{i % 2}")).id for i in range(5)]
    closed = stub.CloseSession(pb.CloseSessionRequest(session_id=ids[0]))
    assert closed.state == pb.SESSION_STATE_CLOSED and closed.close_time.seconds > 0
    again = stub.CloseSession(pb.CloseSessionRequest(session_id=ids[0]))
    assert again.close_time == closed.close_time

    first = stub.ListSessions(pb.ListSessionsRequest(limit=2))
    assert [s.id for s in first.sessions] == ids[::-1][:2]
    seen = [s.id for s in first.sessions]
    token = first.next_page_token
    while token:
        page = stub.ListSessions(pb.ListSessionsRequest(limit=2, page_token=token))
        seen += [s.id for s in page.sessions]
        token = page.next_page_token
    assert seen == ids[::-1]

    only_u0 = stub.ListSessions(pb.ListSessionsRequest(user_id="u0"))
    assert [s.id for s in only_u0.sessions] == [ids[4], ids[2], ids[0]]
    active = stub.ListSessions(pb.ListSessionsRequest(state=pb.SESSION_STATE_ACTIVE))
    assert ids[0] not in {s.id for s in active.sessions} and len(active.sessions) == 4


def test_write_to_closed_session_fails_precondition_and_changes_nothing(stub: Stub) -> None:
    session, prompt, _, _ = turn(stub)
    stub.CloseSession(pb.CloseSessionRequest(session_id=session.id))
    before = stub.GetMetrics(pb.GetMetricsRequest())
    code, message = status_of(
        lambda: stub.AddPrompt(pb.AddPromptRequest(session_id=session.id, content="late"))
    )
    assert code == grpc.StatusCode.FAILED_PRECONDITION
    assert "closed" in message and session.id in message
    code, _ = status_of(
        lambda: stub.AddResponse(pb.AddResponseRequest(prompt_id=prompt.id, content="late"))
    )
    assert code == grpc.StatusCode.FAILED_PRECONDITION
    after = stub.GetMetrics(pb.GetMetricsRequest())
    assert after.nodes_by_kind == before.nodes_by_kind and after.edges == before.edges


def test_delete_session_cascades_to_nodes_and_edges(stub: Stub) -> None:
    session, prompt, response, tool = turn(stub)
    other, *_ = turn(stub)
    agent = stub.CreateNode(pb.CreateNodeRequest(kind=pb.NODE_KIND_AGENT, content="helper"))
    stub.CreateEdge(
        pb.CreateEdgeRequest(
            source_id=response.id, target_id=agent.id, kind=pb.EDGE_KIND_HANDLED_BY
        )
    )

    deleted = stub.DeleteSession(pb.DeleteSessionRequest(session_id=session.id))
    assert deleted.deleted_nodes == 4
    assert deleted.deleted_edges == 4  # belongs_to, responds_to, invokes, handled_by
    for node_id in (session.id, prompt.id, response.id, tool.id):
        code, _ = status_of(
            lambda node_id=node_id: stub.GetNode(pb.GetNodeRequest(node_id=node_id))
        )
        assert code == grpc.StatusCode.NOT_FOUND
    assert (
        stub.GetEdges(pb.GetEdgesRequest(node_id=agent.id, direction=pb.DIRECTION_BOTH)).edges == []
    )
    remaining = stub.Query(pb.QueryRequest(filter=pb.QueryFilter(session_id=other.id)))
    assert len(remaining.nodes) == 3
    metrics = stub.GetMetrics(pb.GetMetricsRequest())
    assert metrics.sessions == 1 and metrics.edges == 3
    assert metrics.token_usage.total_tokens == 8


def test_node_crud_batch_and_cascading_delete(stub: Stub) -> None:
    session, prompt, _, _ = turn(stub)
    created = stub.BatchCreateNodes(
        pb.BatchCreateNodesRequest(
            requests=[
                pb.CreateNodeRequest(
                    kind=pb.NODE_KIND_AGENT,
                    content="planner",
                    agent=pb.AgentDetails(name="planner", capabilities=["plan", "search"]),
                ),
                pb.CreateNodeRequest(
                    kind=pb.NODE_KIND_PROMPT,
                    session_id=session.id,
                    content="follow-up",
                    metadata={"lang": "en"},
                ),
            ]
        )
    ).nodes
    agent, follow_up = created
    assert list(agent.agent.capabilities) == ["plan", "search"] and agent.session_id == ""
    follows = stub.GetEdges(pb.GetEdgesRequest(node_id=follow_up.id, kinds=[pb.EDGE_KIND_FOLLOWS]))
    assert edge_set(follows.edges) == {(follow_up.id, pb.EDGE_KIND_FOLLOWS, prompt.id)}

    updated = stub.UpdateNode(
        pb.UpdateNodeRequest(
            node_id=follow_up.id, content="edited", update_mask=FieldMask(paths=["content"])
        )
    )
    assert updated.content == "edited" and dict(updated.metadata) == {"lang": "en"}
    assert updated.update_time.ToMicroseconds() >= updated.create_time.ToMicroseconds()

    got = stub.BatchGetNodes(
        pb.BatchGetNodesRequest(node_ids=[agent.id, str(uuid.uuid4()), follow_up.id])
    )
    assert [n.id for n in got.nodes] == [agent.id, follow_up.id] and len(got.missing_ids) == 1

    edge = stub.CreateEdge(
        pb.CreateEdgeRequest(
            source_id=follow_up.id,
            target_id=agent.id,
            kind=pb.EDGE_KIND_HANDLED_BY,
            metadata={"why": "routing"},
        )
    )
    assert dict(edge.metadata) == {"why": "routing"}
    result = stub.DeleteNode(pb.DeleteNodeRequest(node_id=follow_up.id))
    assert result.deleted_edges == 3  # belongs_to, follows, handled_by
    assert (
        stub.GetEdges(pb.GetEdgesRequest(node_id=agent.id, direction=pb.DIRECTION_BOTH)).edges == []
    )


def test_edges_filters_and_delete(stub: Stub) -> None:
    session, prompt, response, _ = turn(stub)
    incoming = stub.GetEdges(pb.GetEdgesRequest(node_id=prompt.id, direction=pb.DIRECTION_INCOMING))
    assert edge_set(incoming.edges) == {(response.id, pb.EDGE_KIND_RESPONDS_TO, prompt.id)}
    outgoing = stub.GetEdges(pb.GetEdgesRequest(node_id=prompt.id, kinds=[pb.EDGE_KIND_BELONGS_TO]))
    assert edge_set(outgoing.edges) == {(prompt.id, pb.EDGE_KIND_BELONGS_TO, session.id)}
    stub.DeleteEdge(
        pb.DeleteEdgeRequest(
            source_id=response.id, target_id=prompt.id, kind=pb.EDGE_KIND_RESPONDS_TO
        )
    )
    assert (
        stub.GetEdges(pb.GetEdgesRequest(node_id=prompt.id, direction=pb.DIRECTION_INCOMING)).edges
        == []
    )
    code, _ = status_of(
        lambda: stub.DeleteEdge(
            pb.DeleteEdgeRequest(
                source_id=response.id, target_id=prompt.id, kind=pb.EDGE_KIND_RESPONDS_TO
            )
        )
    )
    assert code == grpc.StatusCode.NOT_FOUND


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
    stub.BatchCreateNodes(
        pb.BatchCreateNodesRequest(
            requests=[
                pb.CreateNodeRequest(
                    kind=pb.NODE_KIND_PROMPT, session_id=session.id, content=f"p{i}"
                )
                for i in range(1005)
            ]
        )
    )
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


def test_traverse_is_bounded_by_depth_kinds_and_size(stub: Stub) -> None:
    session, prompt, response, tool = turn(stub)
    up = stub.Traverse(pb.TraverseRequest(start_node_id=tool.id, max_depth=10))
    assert [(t.node.id, t.depth) for t in up.nodes] == [
        (tool.id, 0),
        (response.id, 1),
        (prompt.id, 2),
        (session.id, 3),
    ]
    assert len(up.edges) == 3 and not up.truncated
    shallow = stub.Traverse(pb.TraverseRequest(start_node_id=tool.id, max_depth=1))
    assert [t.node.id for t in shallow.nodes] == [tool.id, response.id]
    down = stub.Traverse(
        pb.TraverseRequest(
            start_node_id=session.id,
            direction=pb.DIRECTION_INCOMING,
            edge_kinds=[pb.EDGE_KIND_BELONGS_TO],
        )
    )
    assert [t.node.id for t in down.nodes] == [session.id, prompt.id]
    capped = stub.Traverse(
        pb.TraverseRequest(start_node_id=prompt.id, direction=pb.DIRECTION_BOTH, max_nodes=2)
    )
    assert len(capped.nodes) == 2 and capped.truncated


def test_templates_render_count_and_link_prompts(stub: Stub) -> None:
    template = stub.CreateTemplate(
        pb.CreateTemplateRequest(
            name="greeting",
            content="Hello {{ name }}, you are {{age}} years old.{{suffix}}",
            variables=[
                pb.TemplateVariable(name="name", required=True),
                pb.TemplateVariable(name="age", pattern="[0-9]{1,3}", default_value="30"),
                pb.TemplateVariable(name="suffix"),
            ],
        )
    )
    rendered = stub.InstantiateTemplate(
        pb.InstantiateTemplateRequest(name="greeting", variables={"name": "Ada"})
    )
    assert rendered.content == "Hello Ada, you are 30 years old."
    assert not rendered.HasField("prompt")

    session = stub.CreateSession(pb.CreateSessionRequest())
    recorded = stub.InstantiateTemplate(
        pb.InstantiateTemplateRequest(
            template_id=template.id, variables={"name": "Bob", "age": "41"}, session_id=session.id
        )
    )
    assert recorded.prompt.content == "Hello Bob, you are 41 years old."
    assert recorded.prompt.prompt.template_id == template.id
    edges = stub.GetEdges(pb.GetEdgesRequest(node_id=recorded.prompt.id))
    assert (recorded.prompt.id, pb.EDGE_KIND_INSTANTIATES, template.id) in edge_set(edges.edges)
    assert stub.GetTemplate(pb.GetTemplateRequest(name="greeting")).usage_count == 2
    by_id = stub.GetTemplate(pb.GetTemplateRequest(template_id=template.id))
    assert by_id.name == "greeting" and len(by_id.variables) == 3


@pytest.mark.parametrize(
    ("request_", "fragment"),
    [
        (pb.InstantiateTemplateRequest(name="t", variables={}), "missing required"),
        (
            pb.InstantiateTemplateRequest(name="t", variables={"who": "x", "n": "abc"}),
            "does not match",
        ),
        (pb.InstantiateTemplateRequest(name="t", variables={"who": "x", "zzz": "1"}), "unknown"),
    ],
)
def test_bad_template_variables_are_invalid_and_not_counted(
    stub: Stub, request_: pb.InstantiateTemplateRequest, fragment: str
) -> None:
    stub.CreateTemplate(
        pb.CreateTemplateRequest(
            name="t",
            content="{{who}} {{n}}",
            variables=[
                pb.TemplateVariable(name="who", required=True),
                pb.TemplateVariable(name="n", pattern="[0-9]+"),
            ],
        )
    )
    code, message = status_of(lambda: stub.InstantiateTemplate(request_))
    assert code == grpc.StatusCode.INVALID_ARGUMENT and fragment in message
    assert stub.GetTemplate(pb.GetTemplateRequest(name="t")).usage_count == 0


def test_template_with_bad_regex_or_duplicate_name_is_refused(stub: Stub) -> None:
    code, message = status_of(
        lambda: stub.CreateTemplate(
            pb.CreateTemplateRequest(
                name="x", content="{{a}}", variables=[pb.TemplateVariable(name="a", pattern="(")]
            )
        )
    )
    assert code == grpc.StatusCode.INVALID_ARGUMENT and "RE2" in message
    code, message = status_of(
        lambda: stub.CreateTemplate(pb.CreateTemplateRequest(name="x", content="{{undeclared}}"))
    )
    assert code == grpc.StatusCode.INVALID_ARGUMENT and "undeclared" in message
    stub.CreateTemplate(pb.CreateTemplateRequest(name="x", content="plain"))
    code, _ = status_of(
        lambda: stub.CreateTemplate(pb.CreateTemplateRequest(name="x", content="again"))
    )
    assert code == grpc.StatusCode.ALREADY_EXISTS


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


def test_health_reflection_and_ops_rpcs(stub: Stub, inprocess_server: RunningServer) -> None:
    health = stub.Health(pb.HealthRequest())
    assert health.status == pb.HealthResponse.STATUS_SERVING
    assert health.schema_version == SCHEMA_VERSION and health.durability == "durable"
    with grpc.insecure_channel(f"127.0.0.1:{inprocess_server.port}") as channel:
        standard = health_pb2_grpc.HealthStub(channel).Check(
            health_pb2.HealthCheckRequest(service="memorygraph.v1.MemoryGraphService")
        )
        assert standard.status == health_pb2.HealthCheckResponse.SERVING
        reflection = reflection_pb2_grpc.ServerReflectionStub(channel)
        replies = reflection.ServerReflectionInfo(
            iter([reflection_pb2.ServerReflectionRequest(list_services="")])
        )
        names = {s.name for r in replies for s in r.list_services_response.service}
    assert "memorygraph.v1.MemoryGraphService" in names
    assert "grpc.health.v1.Health" in names
    turn(stub)
    metrics = stub.GetMetrics(pb.GetMetricsRequest())
    assert metrics.requests_by_method["AddPrompt"] == 1
    assert metrics.nodes_by_kind["tool_invocation"] == 1 and metrics.store_size_bytes > 0
