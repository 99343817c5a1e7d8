"""Which hooks fire: every hook point is dispatched, and before_query sees every read."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import grpc
import pytest
from memorygraph.plugins.schema import Hook
from memorygraph.v1 import graph_pb2 as pb

from .plugin_support import LOOPBACK, Start, Webhook, connect, serve_plugins, webhook_plugin


def wait_for(condition: Callable[[], bool], timeout: float = 10) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.02)


def test_every_hook_point_is_dispatched(
    start_inprocess: Start, webhook: Webhook, tmp_path: Path
) -> None:
    plugin = webhook_plugin("recorder", webhook.url, [h.value for h in Hook])
    server = serve_plugins(start_inprocess, tmp_path, plugin, **LOOPBACK)
    stub = connect(server)
    session = stub.CreateSession(pb.CreateSessionRequest(title="t"))
    prompt = stub.AddPrompt(pb.AddPromptRequest(session_id=session.id, content="q"))
    response = stub.AddResponse(pb.AddResponseRequest(prompt_id=prompt.id, content="a"))
    stub.AddToolInvocation(pb.AddToolInvocationRequest(response_id=response.id, tool_name="t"))
    agent = stub.CreateNode(pb.CreateNodeRequest(kind=pb.NODE_KIND_AGENT, content="helper"))
    stub.UpdateNode(pb.UpdateNodeRequest(node_id=agent.id, content="helper v2"))
    stub.CreateEdge(
        pb.CreateEdgeRequest(
            source_id=response.id, target_id=agent.id, kind=pb.EDGE_KIND_HANDLED_BY
        )
    )
    stub.DeleteEdge(
        pb.DeleteEdgeRequest(
            source_id=response.id, target_id=agent.id, kind=pb.EDGE_KIND_HANDLED_BY
        )
    )
    stub.DeleteNode(pb.DeleteNodeRequest(node_id=agent.id))
    stub.CreateTemplate(
        pb.CreateTemplateRequest(
            name="t", content="hi {{who}}", variables=[pb.TemplateVariable(name="who")]
        )
    )
    stub.InstantiateTemplate(
        pb.InstantiateTemplateRequest(name="t", variables={"who": "x"}, session_id=session.id)
    )
    stub.Query(pb.QueryRequest(filter=pb.QueryFilter(session_id=session.id)))
    list(stub.StreamQuery(pb.StreamQueryRequest(filter=pb.QueryFilter(session_id=session.id))))
    list(
        stub.Ingest(
            iter(
                [
                    pb.IngestBatch(
                        items=[
                            pb.IngestItem(
                                prompt=pb.AddPromptRequest(session_id=session.id, content="bulk")
                            )
                        ]
                    )
                ]
            )
        )
    )
    stub.CloseSession(pb.CloseSessionRequest(session_id=session.id))
    # Archival fires before_archive at the export for it and after_archive at the removal.
    chunks = list(
        stub.ExportSession(pb.ExportSessionRequest(session_id=session.id, for_archive=True))
    )
    stub.ArchiveSession(
        pb.ArchiveSessionRequest(
            session_id=session.id, content_sha256=chunks[-1].summary.content_sha256
        )
    )
    other = stub.CreateSession(pb.CreateSessionRequest(title="t2"))
    stub.DeleteSession(pb.DeleteSessionRequest(session_id=other.id))

    wait_for(lambda: webhook.hooks_seen() == {h.value for h in Hook})
    created = [c["call"] for c in webhook.calls if c["call"]["hook"] == "before_create_node"]
    assert {c["subject"] for c in created} >= {"prompt", "response", "tool_invocation", "agent"}
    assert all(c["apiVersion"] == "memorygraph.io/plugins/v1" for c in webhook.calls)


def test_a_read_hook_that_refuses_everything_refuses_every_read(
    start_inprocess: Start, webhook: Webhook, tmp_path: Path
) -> None:
    """before_query sees every RPC that returns graph data, not only Query."""
    refusing = {"on": False}

    def answer(body: dict[str, Any]) -> tuple[int, Any]:
        if refusing["on"] and body["call"]["hook"] == "before_query":
            return 200, {"allow": False, "reason": "reads are closed"}
        return 200, {"allow": True}

    webhook.answer = answer
    plugin = webhook_plugin("gate", webhook.url, ["before_query"])
    server = serve_plugins(start_inprocess, tmp_path, plugin, **LOOPBACK)
    stub = connect(server)
    session = stub.CreateSession(pb.CreateSessionRequest(title="t"))
    prompt = stub.AddPrompt(pb.AddPromptRequest(session_id=session.id, content="secret"))
    stub.CreateTemplate(pb.CreateTemplateRequest(name="t", content="hi"))
    reads: dict[str, Callable[[], Any]] = {
        "get_node": lambda: stub.GetNode(pb.GetNodeRequest(node_id=prompt.id)),
        "batch_get_nodes": lambda: stub.BatchGetNodes(
            pb.BatchGetNodesRequest(node_ids=[prompt.id])
        ),
        "get_session": lambda: stub.GetSession(pb.GetSessionRequest(session_id=session.id)),
        "list_sessions": lambda: stub.ListSessions(pb.ListSessionsRequest()),
        "query": lambda: stub.Query(pb.QueryRequest(filter=pb.QueryFilter(session_id=session.id))),
        "stream_query": lambda: list(
            stub.StreamQuery(pb.StreamQueryRequest(filter=pb.QueryFilter(session_id=session.id)))
        ),
        "traverse": lambda: stub.Traverse(pb.TraverseRequest(start_node_id=prompt.id)),
        "get_edges": lambda: stub.GetEdges(pb.GetEdgesRequest(node_id=prompt.id)),
        "get_template": lambda: stub.GetTemplate(pb.GetTemplateRequest(name="t")),
        "export_session": lambda: list(
            stub.ExportSession(pb.ExportSessionRequest(session_id=session.id))
        ),
        "stream_events": lambda: next(
            iter(stub.StreamEvents(pb.StreamEventsRequest(from_sequence=1), timeout=5))
        ),
        "subscribe_to_session": lambda: next(
            iter(
                stub.SubscribeToSession(
                    pb.SubscribeToSessionRequest(session_id=session.id, from_sequence=1),
                    timeout=5,
                )
            )
        ),
    }
    for read in reads.values():  # all allowed while the gate is open
        read()
    refusing["on"] = True
    webhook.calls.clear()
    for name, read in reads.items():
        with pytest.raises(grpc.RpcError) as info:
            read()
        assert info.value.code() == grpc.StatusCode.FAILED_PRECONDITION, name
        assert info.value.details() == "rejected by plugin 'gate': reads are closed", name
    seen = [c["call"] for c in webhook.calls]
    assert [c["details"]["read"] for c in seen] == list(reads)
    by_read = {c["details"]["read"]: c for c in seen}
    assert by_read["get_node"]["session_id"] == session.id
    assert by_read["get_node"]["details"]["node_ids"] == [prompt.id]
    assert by_read["query"]["details"]["kinds"] == []


def test_a_read_hook_sees_every_session_a_read_returns_data_of(
    start_inprocess: Start, webhook: Webhook, tmp_path: Path
) -> None:
    """A plugin guarding one session can refuse reads that reach it through another: a
    batch of nodes, a traversal across a reference, a query by kind."""
    private: dict[str, str] = {}

    def answer(body: dict[str, Any]) -> tuple[int, Any]:
        call = body["call"]
        touched = {call["session_id"], *call["details"].get("session_ids", [])}
        if call["hook"] == "before_query" and private.get("id") in touched:
            return 200, {"allow": False, "reason": "private session"}
        return 200, {"allow": True}

    webhook.answer = answer
    plugin = webhook_plugin("acl", webhook.url, ["before_query"])
    stub = connect(serve_plugins(start_inprocess, tmp_path, plugin, **LOOPBACK))
    secret = stub.CreateSession(pb.CreateSessionRequest(title="secret"))
    public = stub.CreateSession(pb.CreateSessionRequest(title="public"))
    hidden = stub.AddPrompt(pb.AddPromptRequest(session_id=secret.id, content="the secret"))
    shown = stub.AddPrompt(pb.AddPromptRequest(session_id=public.id, content="hello"))
    stub.CreateEdge(
        pb.CreateEdgeRequest(source_id=shown.id, target_id=hidden.id, kind=pb.EDGE_KIND_REFERENCES)
    )
    private["id"] = secret.id
    reads: dict[str, Callable[[], Any]] = {
        "batch": lambda: stub.BatchGetNodes(
            pb.BatchGetNodesRequest(node_ids=[hidden.id, shown.id])
        ),
        "traverse": lambda: stub.Traverse(pb.TraverseRequest(start_node_id=shown.id)),
        "query by kind": lambda: stub.Query(
            pb.QueryRequest(filter=pb.QueryFilter(kinds=[pb.NODE_KIND_PROMPT]))
        ),
    }
    for name, read in reads.items():
        with pytest.raises(grpc.RpcError) as info:
            read()
        assert "private session" in info.value.details(), name
    assert stub.GetNode(pb.GetNodeRequest(node_id=shown.id)).content == "hello"
