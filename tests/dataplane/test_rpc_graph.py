"""Sessions, nodes and edges through the RPCs: turns, lifecycles, cascades, filters, traversal."""

from __future__ import annotations

import uuid

import grpc
from google.protobuf.field_mask_pb2 import FieldMask
from memorygraph.v1 import graph_pb2 as pb

from .rpc_support import Stub, edge_set, status_of, turn


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
