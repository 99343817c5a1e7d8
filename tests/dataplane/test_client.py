"""The application client, blocking and asyncio, against a real server."""

from __future__ import annotations

import asyncio
import datetime as dt
import itertools

import memorygraph
import memorygraph.client
import pytest
from memorygraph import AsyncClient, Client, InvalidArgument, NotFound, Unavailable
from memorygraph.errors import AlreadyExists, FailedPrecondition
from memorygraph.server import RunningServer
from memorygraph.v1 import graph_pb2 as pb


@pytest.fixture
def mg(inprocess_server: RunningServer) -> Client:
    with Client(f"127.0.0.1:{inprocess_server.port}", timeout=10) as client:
        yield client  # type: ignore[misc]


def test_public_names_are_pinned() -> None:
    assert memorygraph.__all__ == [
        "AlreadyExists",
        "AsyncClient",
        "Cancelled",
        "Client",
        "ConfigError",
        "DeadlineExceeded",
        "FailedPrecondition",
        "InternalError",
        "InvalidArgument",
        "MemoryGraphError",
        "NotFound",
        "OutOfRange",
        "RequestError",
        "ResourceExhausted",
        "Unauthenticated",
        "Unavailable",
        "__version__",
    ]


def test_client_package_names_are_pinned() -> None:
    assert memorygraph.client.__all__ == ["AsyncClient", "Client"]
    assert memorygraph.Client is memorygraph.client.Client
    assert memorygraph.AsyncClient is memorygraph.client.AsyncClient


def test_recording_and_reading_a_conversation(mg: Client) -> None:
    session = mg.create_session(title="support", user_id="u-1", metadata={"team": "a"})
    prompt = mg.add_prompt(session.id, "Where is my order?", model="m", role="user")
    response = mg.add_response(prompt.id, "Today.", token_usage=(12, 6), finish_reason="stop")
    tool = mg.add_tool_invocation(response.id, "lookup", status="succeeded", arguments="{}")
    assert tool.tool_invocation.status == pb.TOOL_STATUS_SUCCEEDED
    assert mg.get_session(session.id).token_usage.total_tokens == 18
    assert [n.id for n in mg.iter_query(session_id=session.id)] == [prompt.id, response.id, tool.id]
    assert [n.id for n in mg.stream_query(session_id=session.id, kinds=["response"])] == [
        response.id
    ]
    later = dt.datetime.now(dt.UTC) + dt.timedelta(hours=1)
    assert mg.query(session_id=session.id, start_time=later).nodes == []
    assert [e.kind for e in mg.get_edges(prompt.id, direction="incoming")] == [
        pb.EDGE_KIND_RESPONDS_TO
    ]
    walk = mg.traverse(tool.id, max_depth=5)
    assert [t.node.id for t in walk.nodes] == [tool.id, response.id, prompt.id, session.id]
    assert [s.id for s in mg.iter_sessions(user_id="u-1")] == [session.id]
    assert mg.list_sessions(state="active").sessions[0].id == session.id


def test_nodes_edges_templates_and_ops(mg: Client) -> None:
    session = mg.create_session()
    agent = mg.create_node("agent", content="router", details=pb.AgentDetails(name="router"))
    updated = mg.update_node(agent.id, metadata={"v": "2"})
    assert updated.content == "router" and dict(updated.metadata) == {"v": "2"}
    nodes = mg.batch_create_nodes(
        [
            pb.CreateNodeRequest(kind=pb.NODE_KIND_PROMPT, session_id=session.id, content="a"),
            pb.CreateNodeRequest(kind=pb.NODE_KIND_PROMPT, session_id=session.id, content="b"),
        ]
    ).nodes
    assert len(mg.batch_get_nodes([n.id for n in nodes]).nodes) == 2
    mg.create_edge(nodes[0].id, agent.id, "handled_by", metadata={"why": "x"})
    with pytest.raises(AlreadyExists):
        mg.create_edge(nodes[0].id, agent.id, "handled_by")
    mg.delete_edge(nodes[0].id, agent.id, "handled_by")
    assert mg.delete_node(agent.id).deleted_edges == 0
    template = mg.create_template("hello", "Hi {{name}}", variables=[{"name": "name"}])
    out = mg.instantiate_template(name="hello", variables={"name": "Ada"}, session_id=session.id)
    assert out.content == "Hi Ada" and out.prompt.prompt.template_id == template.id
    assert mg.get_template(template_id=template.id).usage_count == 1
    acks = list(
        mg.ingest(
            [
                pb.IngestBatch(
                    batch_id="b",
                    items=[
                        pb.IngestItem(
                            prompt=pb.AddPromptRequest(session_id=session.id, content="bulk")
                        )
                    ],
                )
            ]
        )
    )
    assert acks[0].batch_id == "b" and len(acks[0].ids) == 1
    events = list(itertools.islice(mg.stream_events(from_sequence=1, session_id=session.id), 3))
    assert events[0].type == pb.EVENT_TYPE_SESSION_CREATED
    assert mg.health().status == pb.HealthResponse.STATUS_SERVING
    assert mg.get_metrics().nodes_by_kind["prompt"] == 4
    mg.close_session(session.id)
    with pytest.raises(FailedPrecondition, match="closed"):
        mg.add_prompt(session.id, "late")
    assert mg.delete_session(session.id).deleted_nodes == 5


def test_errors_are_the_memorygraph_classes(mg: Client) -> None:
    with pytest.raises(InvalidArgument, match="not a valid id"):
        mg.get_node("nope")
    with pytest.raises(NotFound):
        mg.get_node("0190a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5b")
    with pytest.raises(InvalidArgument, match="unknown node kind 'robot'"):
        mg.query(kinds=["robot"])
    with Client("127.0.0.1:1", timeout=2) as nowhere, pytest.raises(Unavailable):
        nowhere.health()


def test_async_client(inprocess_server: RunningServer) -> None:
    async def scenario() -> list[str]:
        async with AsyncClient(f"127.0.0.1:{inprocess_server.port}") as mg:
            session = await mg.create_session(title="async")
            prompt = await mg.add_prompt(session.id, "q")
            await mg.add_response(prompt.id, "a", token_usage=pb.TokenUsage(prompt_tokens=1))
            with pytest.raises(NotFound):
                await mg.get_node("0190a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5b")
            assert (await mg.health()).status == pb.HealthResponse.STATUS_SERVING
            return [n.content async for n in mg.stream_query(session_id=session.id)]

    assert asyncio.run(scenario()) == ["q", "a"]


def test_api_key_is_sent_as_bearer_token(start_inprocess, tmp_path) -> None:  # type: ignore[no-untyped-def]
    keys = tmp_path / "keys"
    keys.write_text("k1\n")
    server = start_inprocess(auth={"enabled": True, "api_keys_file": keys})
    with Client(f"127.0.0.1:{server.port}", api_key="k1") as mg:
        assert mg.create_session().id
    with (
        Client(f"127.0.0.1:{server.port}", api_key="wrong") as mg,
        pytest.raises(memorygraph.Unauthenticated),
    ):
        mg.create_session()


def test_async_client_archive_round_trip(inprocess_server: RunningServer) -> None:
    async def scenario() -> tuple[bytes, bytes, list[str]]:
        async with AsyncClient(f"127.0.0.1:{inprocess_server.port}") as mg:
            session = await mg.create_session(title="async archive")
            await mg.add_prompt(session.id, "q")
            await mg.close_session(session.id)
            soon = dt.datetime.now(dt.UTC) + dt.timedelta(seconds=1)
            found = [c.session.id async for c in mg.iter_archive_candidates(soon)]
            data, summary = await mg.export_session(session.id)
            await mg.archive_session(session.id, summary.content_sha256)
            with pytest.raises(NotFound):
                await mg.get_session(session.id)
            await mg.restore_session(data)
            return data, (await mg.export_session(session.id))[0], found

    before, after, found = asyncio.run(scenario())
    assert before == after
    assert len(found) == 1
