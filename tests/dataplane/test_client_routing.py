"""Clients that route with the shard map: each call about one shard goes straight to its
owner, a stale map gets a redirect the client follows, and a server of one process (or a
client that does not route) is talked to as before."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import grpc
import pytest
from memorygraph.client import AsyncClient, Client
from memorygraph.client._connection import tls_name
from memorygraph.errors import WrongOwner
from memorygraph.model import parse_id
from memorygraph.server import RunningServer
from memorygraph.store.shards import Shards
from memorygraph.v1 import graph_pb2 as pb
from memorygraph.v1.graph_pb2_grpc import MemoryGraphServiceStub
from prometheus_client import REGISTRY

from .conftest import start_workers
from .rpc_support import connect_routes

Start = Callable[..., RunningServer]


def _counted(name: str, method: str) -> float:
    value = REGISTRY.get_sample_value(f"memorygraph_{name}_total", {"method": method})
    return value or 0.0


def _shard(text: str) -> int:
    return Shards(64).of_id(parse_id(text, "id"))


@pytest.fixture
def workers(tmp_path: Path) -> Iterator[list[RunningServer]]:
    servers = start_workers(tmp_path / "data", 2)
    yield servers
    for server in servers:
        server.stop(grace=1)


def _shared(servers: list[RunningServer]) -> str:
    return f"127.0.0.1:{servers[0].port}"


def _own(servers: list[RunningServer], worker: int) -> str:
    return f"127.0.0.1:{servers[0].port + 1 + worker}"


def _conversation(mg: Client, sessions: int) -> list[str]:
    """A turn in each of `sessions` new sessions, read back; returns their ids."""
    made = []
    for i in range(sessions):
        session = mg.create_session(title=f"s{i}")
        prompt = mg.add_prompt(session.id, "where is my order?")
        response = mg.add_response(prompt.id, "it ships today", token_usage=(3, 4))
        mg.add_tool_invocation(response.id, "lookup", status="succeeded")
        turn = mg.record_turn(
            session.id, "and now?", "still today", tool_invocations=[{"tool_name": "t"}]
        )
        assert mg.get_node(turn.tool_invocations[0].id).session_id == session.id
        assert mg.get_node(prompt.id).content == "where is my order?"
        prompts = [n.id for n in mg.iter_query(session_id=session.id, kinds=["prompt"])]
        assert prompts == [prompt.id, turn.prompt.id]
        made.append(session.id)
    return made


def test_a_routing_client_sends_every_call_about_a_shard_straight_to_its_owner(
    workers: list[RunningServer],
) -> None:
    with Client(_shared(workers)) as mg:
        connect_routes(mg)
        shard_map = mg.get_shard_map()
        assert list(shard_map.workers) == [_own(workers, 0), _own(workers, 1)]
        methods = ("AddPrompt", "GetNode", "RecordTurn")
        forwarded = {m: _counted("forwarded_calls", m) for m in methods}
        sessions = _conversation(mg, 30)
        assert {shard_map.owners[_shard(s)] for s in sessions} == {0, 1}  # both used
        assert {m: _counted("forwarded_calls", m) for m in forwarded} == forwarded
        assert mg.get_metrics().nodes_by_kind["prompt"] == 60
    # The same calls from a client that does not route reach the owner through a forward.
    with Client(_shared(workers), route=False) as plain:
        before = {m: _counted("forwarded_calls", m) for m in ("AddPrompt", "RecordTurn")}
        _conversation(plain, 10)
        assert all(_counted("forwarded_calls", m) > before[m] for m in before)


def test_a_stale_map_gets_a_redirect_the_client_follows_and_the_call_runs_once(
    workers: list[RunningServer],
) -> None:
    with Client(_shared(workers)) as mg:
        connect_routes(mg)
        session = next(s for s in iter(lambda: mg.create_session().id, None) if _shard(s) % 2)
        # The client's map goes stale: it believes worker 0 owns every shard.
        mg.routes.owners = [_own(workers, 0)] * 64
        redirected = _counted("redirected_calls", "AddPrompt")
        prompt = mg.add_prompt(session, "q")
        assert _counted("redirected_calls", "AddPrompt") == redirected + 1
        assert [n.id for n in mg.iter_query(session_id=session, kinds=["prompt"])] == [prompt.id]
        assert mg.routes.owners[_shard(session)] == _own(workers, 1)  # the map was fetched again
        assert mg.routes.owners == [_own(workers, s % 2) for s in range(64)]


def test_a_call_naming_an_epoch_to_a_worker_without_its_shard_is_redirected_untouched(
    workers: list[RunningServer],
) -> None:
    with Client(_shared(workers)) as mg:
        session = next(s for s in iter(lambda: mg.create_session().id, None) if _shard(s) % 2)
    wrong = MemoryGraphServiceStub(grpc.insecure_channel(_own(workers, 0)))
    request = pb.AddPromptRequest(session_id=session, content="q")
    with pytest.raises(grpc.RpcError) as info:
        wrong.AddPrompt(request, metadata=((WrongOwner.EPOCH_KEY, "1"),))
    assert info.value.code() is grpc.StatusCode.FAILED_PRECONDITION
    trailers = dict(info.value.trailing_metadata())
    assert trailers[WrongOwner.OWNER_KEY] == _own(workers, 1)
    assert trailers[WrongOwner.EPOCH_KEY] == "1"
    assert trailers[WrongOwner.SHARD_KEY] == str(_shard(session))
    assert f"shard {_shard(session)} is on worker 1 at {_own(workers, 1)}" in info.value.details()
    query = pb.QueryRequest(filter=pb.QueryFilter(session_id=session, kinds=[pb.NODE_KIND_PROMPT]))
    assert list(wrong.Query(query).nodes) == []  # nothing was written
    # Without an epoch the same call is passed on to the owner and runs.
    assert wrong.AddPrompt(request).session_id == session
    assert len(wrong.Query(query).nodes) == 1


def test_a_client_routes_only_when_the_graph_has_workers(start_inprocess: Start) -> None:
    server = start_inprocess()
    workers = len(getattr(server, "servers", [server]))
    with Client(f"127.0.0.1:{server.port}") as mg:
        sessions = _conversation(mg, 3)
        assert mg.routes.enabled is (workers > 1)
        assert len(mg.list_sessions().sessions) == len(sessions)
    with Client(f"127.0.0.1:{server.port}", route=False) as plain:
        assert len(_conversation(plain, 2)) == 2
        assert plain.routes.shards == 0


def test_the_async_client_routes_and_follows_redirects(workers: list[RunningServer]) -> None:
    async def run() -> None:
        async with AsyncClient(_shared(workers)) as mg:
            deadline = time.monotonic() + 10
            while len(mg._workers) < 2 or not all(
                channel.get_state() is grpc.ChannelConnectivity.READY
                for channel, _ in mg._workers.values()
            ):
                assert time.monotonic() < deadline
                await mg.get_session((await mg.create_session()).id)
                await asyncio.sleep(0.01)
            forwarded = _counted("forwarded_calls", "AddPrompt")
            sessions = [(await mg.create_session()).id for _ in range(20)]
            for session in sessions:
                prompt = await mg.add_prompt(session, "q")
                assert (await mg.get_node(prompt.id)).session_id == session
            assert _counted("forwarded_calls", "AddPrompt") == forwarded
            odd = next(s for s in sessions if _shard(s) % 2)
            mg.routes.owners = [_own(workers, 0)] * 64
            redirected = _counted("redirected_calls", "AddPrompt")
            await mg.add_prompt(odd, "again")
            assert _counted("redirected_calls", "AddPrompt") == redirected + 1
            events = mg.subscribe_to_session(odd, from_sequence=1)
            kinds = [(await anext(events)).type for _ in range(3)]
            assert kinds[:2] == [pb.EVENT_TYPE_SESSION_CREATED, pb.EVENT_TYPE_NODE_CREATED]
            await events.aclose()

    asyncio.run(run())


@pytest.mark.parametrize(
    ("target", "name"),
    [
        ("127.0.0.1:50051", "127.0.0.1"),
        ("localhost:50051", "localhost"),
        ("[::1]:50051", "::1"),
        ("dns:///graph.example:443", "graph.example"),
        ("dns:graph.example:443", "graph.example"),
        ("ipv4:10.0.0.1:50051,10.0.0.2:50051", "10.0.0.1"),
        ("ipv6:[fd00::1]:50051", "fd00::1"),
        ("unixbox.example.com:50051", "unixbox.example.com"),
        ("unix:/run/memorygraph.sock", None),
    ],
)
def test_workers_certificates_are_checked_against_the_host_the_client_was_given(
    target: str, name: str | None
) -> None:
    assert tls_name(target) == name
