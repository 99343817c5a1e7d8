"""The application client, blocking and asyncio, against a real server."""

from __future__ import annotations

import asyncio
import datetime as dt
import inspect
import itertools
from collections.abc import AsyncIterator

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


# Where the asyncio twin deliberately accepts more than `Client`: batches from an async iterable.
WIDER_IN_ASYNC = {
    ("ingest", "batches"): "Iterable[pb.IngestBatch] | AsyncIterable[pb.IngestBatch]",
}


def public_methods(cls: type) -> dict[str, inspect.Signature]:
    names = [n for n, _ in inspect.getmembers(cls, inspect.isfunction) if not n.startswith("_")]
    return {name: inspect.signature(getattr(cls, name)) for name in [*names, "__init__"]}


def test_async_client_has_every_method_of_client_with_the_same_parameters() -> None:
    """A method added to one twin and not the other, or a parameter renamed, reordered, made
    keyword-only or given another default or type in one of them, fails here."""
    blocking, aio = public_methods(Client), public_methods(AsyncClient)
    assert {"iter_query", "ingest", "subscribe_to_session", "traverse"} <= set(blocking)
    assert sorted(aio) == sorted(blocking)
    for name, signature in blocking.items():
        twin = aio[name].parameters.values()
        shape = [(p.name, p.kind, p.default) for p in signature.parameters.values()]
        assert [(p.name, p.kind, p.default) for p in twin] == shape, name
        types = [
            WIDER_IN_ASYNC.get((name, p.name), p.annotation) for p in signature.parameters.values()
        ]
        assert [p.annotation for p in twin] == types, name


def test_async_client_returns_what_client_does_awaited_or_as_an_async_iterator() -> None:
    for name, signature in public_methods(Client).items():
        if name == "__init__":
            continue
        method = getattr(AsyncClient, name)
        returns = inspect.signature(method).return_annotation
        if signature.return_annotation.startswith("Iterator["):
            assert inspect.isasyncgenfunction(method), name
            assert returns == f"Async{signature.return_annotation}", name
        else:
            assert inspect.iscoroutinefunction(method), name
            assert returns == signature.return_annotation, name


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


def test_a_turn_recorded_in_one_call(mg: Client) -> None:
    session = mg.create_session(title="support")
    turn = mg.record_turn(
        session.id,
        "Where is my order?",
        "It ships today.",
        model="gpt-4o",
        token_usage=(12, 6),
        tool_invocations=[
            {"tool_name": "order_lookup", "arguments": '{"order": 1}', "status": "succeeded"},
            pb.AddToolInvocationRequest(tool_name="notify", result="sent"),
        ],
        prompt_fields={"role": "user", "metadata": {"channel": "web"}},
        response_fields={"finish_reason": "stop"},
    )
    assert turn.prompt.prompt.model == turn.response.response.model == "gpt-4o"
    assert turn.prompt.prompt.role == "user" and turn.prompt.metadata == {"channel": "web"}
    assert turn.response.response.finish_reason == "stop"
    assert [t.tool_invocation.tool_name for t in turn.tool_invocations] == [
        "order_lookup",
        "notify",
    ]
    assert turn.tool_invocations[0].tool_invocation.status == pb.TOOL_STATUS_SUCCEEDED
    assert mg.get_session(session.id).token_usage.total_tokens == 18
    stored = [n.id for n in mg.iter_query(session_id=session.id)]
    assert stored == [turn.prompt.id, turn.response.id, *(t.id for t in turn.tool_invocations)]
    with pytest.raises(memorygraph.InvalidArgument, match="tool_invocations\\[0\\]: tool_name"):
        mg.record_turn(session.id, "q", "a", tool_invocations=[{"result": "no name"}])
    with pytest.raises(TypeError, match="a list of tool invocations"):
        mg.record_turn(session.id, "q", "a", tool_invocations={"tool_name": "t"})
    with pytest.raises(memorygraph.InvalidArgument, match="status"):
        mg.record_turn(session.id, "q", "a", tool_invocations=[{"tool_name": "t", "status": "x"}])
    assert len(list(mg.iter_query(session_id=session.id))) == 4


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
            turn = await mg.record_turn(
                session.id, "q2", "a2", token_usage=(2, 3), tool_invocations=[{"tool_name": "t"}]
            )
            assert turn.tool_invocations[0].tool_invocation.response_id == turn.response.id
            assert (await mg.get_session(session.id)).token_usage.total_tokens == 6
            with pytest.raises(NotFound):
                await mg.get_node("0190a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5b")
            assert (await mg.health()).status == pb.HealthResponse.STATUS_SERVING
            return [n.content async for n in mg.stream_query(session_id=session.id)]

    assert asyncio.run(scenario()) == ["q", "a", "q2", "a2", ""]


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


def test_async_client_pages_batches_edges_templates_and_traversal(
    inprocess_server: RunningServer,
) -> None:
    async def scenario() -> None:
        async with AsyncClient(f"127.0.0.1:{inprocess_server.port}", timeout=10) as mg:
            sessions = [await mg.create_session(user_id="u-async") for _ in range(2)]
            session = sessions[0]
            found = [s.id async for s in mg.iter_sessions(user_id="u-async", limit=1)]
            assert found == [s.id for s in reversed(sessions)]
            nodes = (
                await mg.batch_create_nodes(
                    [
                        pb.CreateNodeRequest(
                            kind=pb.NODE_KIND_PROMPT, session_id=session.id, content=text
                        )
                        for text in ("a", "b")
                    ]
                )
            ).nodes
            got = await mg.batch_get_nodes([n.id for n in nodes])
            assert [n.content for n in got.nodes] == ["a", "b"]
            agent = await mg.create_node("agent", details=pb.AgentDetails(name="router"))
            await mg.create_edge(nodes[0].id, agent.id, "handled_by")
            walk = await mg.traverse(nodes[0].id, edge_kinds=["handled_by"], max_depth=1)
            assert [t.node.id for t in walk.nodes] == [nodes[0].id, agent.id]
            await mg.delete_edge(nodes[0].id, agent.id, "handled_by")
            assert await mg.get_edges(nodes[0].id, kinds=["handled_by"]) == []
            template = await mg.create_template(
                "hello", "Hi {{name}}", variables=[{"name": "name"}]
            )
            out = await mg.instantiate_template(
                template_id=template.id, variables={"name": "Ada"}, session_id=session.id
            )
            assert out.content == "Hi Ada"
            assert (await mg.get_template(name="hello")).usage_count == 1
            paged = [n.id async for n in mg.iter_query(session_id=session.id, limit=1)]
            assert paged == [nodes[0].id, nodes[1].id, out.prompt.id]

    asyncio.run(scenario())


def test_async_client_ingests_and_follows_a_session(inprocess_server: RunningServer) -> None:
    def batch(session_id: str, batch_id: str) -> pb.IngestBatch:
        prompt = pb.AddPromptRequest(session_id=session_id, content=batch_id)
        return pb.IngestBatch(batch_id=batch_id, items=[pb.IngestItem(prompt=prompt)])

    async def scenario() -> list[int]:
        async with AsyncClient(f"127.0.0.1:{inprocess_server.port}", timeout=10) as mg:
            session = await mg.create_session()
            events = asyncio.create_task(
                collect(mg.subscribe_to_session(session.id, from_sequence=1))
            )

            async def batches() -> AsyncIterator[pb.IngestBatch]:
                for batch_id in ("b1", "b2"):
                    yield batch(session.id, batch_id)

            acks = [a.batch_id async for a in mg.ingest(batches())]
            acks += [a.batch_id async for a in mg.ingest([batch(session.id, "b3")])]
            assert acks == ["b1", "b2", "b3"]
            await mg.delete_session(session.id)
            with pytest.raises(NotFound):
                await collect(mg.subscribe_to_session(session.id))
            with pytest.raises(InvalidArgument, match="unknown event type 'robot'"):
                await collect(mg.stream_events(types=["robot"]))
            return [e.type for e in await asyncio.wait_for(events, 10)]

    types = asyncio.run(scenario())
    assert types[0] == pb.EVENT_TYPE_SESSION_CREATED
    assert types.count(pb.EVENT_TYPE_NODE_CREATED) == 3
    assert types[-1] == pb.EVENT_TYPE_SESSION_DELETED


async def collect(events: AsyncIterator[pb.Event]) -> list[pb.Event]:
    return [event async for event in events]
