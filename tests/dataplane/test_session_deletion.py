"""Deleting a session in steps: other writers go on in between, no reader ever sees it half
deleted, and a deletion a crash interrupted finishes after a restart."""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any

import grpc
import pytest
from memorygraph.errors import AlreadyExists, FailedPrecondition, NotFound, Unavailable
from memorygraph.graph.service import GraphService
from memorygraph.model import (
    Direction,
    EdgeKind,
    EventType,
    NewEdge,
    NewNode,
    NewSession,
    NodeKind,
    ResponseDetails,
    TokenUsage,
)
from memorygraph.store import GraphStore, KeyValueStore
from memorygraph.store.keys import COLUMN_FAMILIES
from memorygraph.store.rocks import RocksStore
from memorygraph.v1 import graph_pb2 as pb
from memorygraph.v1.graph_pb2_grpc import MemoryGraphServiceStub

from .conftest import ServerProcess
from .rpc_support import add_prompts
from .store_support import _raw


def _big_session(service: GraphService, prompts: int) -> tuple[bytes, list[bytes], bytes]:
    """A session of `prompts` prompts each with a response, linked to a global agent;
    returns (session id, its node ids, the agent's id)."""
    session = service.create_session(NewSession(title="big"))
    agent = service.create_node(NewNode(NodeKind.AGENT))
    specs = [NewNode(NodeKind.PROMPT, session.id, f"q{i}") for i in range(prompts)]
    members: list[bytes] = []
    for start in range(0, prompts, 500):
        for prompt in service.create_nodes(specs[start : start + 500]):
            response = service.create_node(
                NewNode(
                    NodeKind.RESPONSE,
                    content="a",
                    details=ResponseDetails(prompt_id=prompt.id, token_usage=TokenUsage(1, 2)),
                )
            )
            members += [prompt.id, response.id]
    service.create_edge(NewEdge(members[0], agent.id, EdgeKind.HANDLED_BY))
    return session.id, members, agent.id


def _everything(kv: KeyValueStore) -> dict[str, dict[bytes, bytes]]:
    return {cf: _raw(kv, cf) for cf in COLUMN_FAMILIES if cf not in ("events", "meta")}


def test_a_large_deletion_is_several_commits_and_other_writers_go_on_between_them(
    kv: KeyValueStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("memorygraph.graph.deletion.STEP_NODES", 100)
    service = GraphService(GraphStore(kv))
    other = service.create_session(NewSession(title="busy"))
    session_id, members, agent_id = _big_session(service, 300)
    before = _everything(kv)
    first = service.store.events.last_sequence + 1
    stop = threading.Event()

    def write_elsewhere() -> None:
        while not stop.is_set():
            service.create_node(NewNode(NodeKind.PROMPT, other.id, "meanwhile"))

    writer = threading.Thread(target=write_elsewhere)
    writer.start()
    try:
        assert service.delete_session(session_id) == (601, 900)
    finally:
        stop.set()
        writer.join()
    events = service.store.events.read(first, service.store.events.last_sequence, 100_000)
    mine = [i for i, e in enumerate(events) if e.session_id == session_id]
    theirs = [i for i, e in enumerate(events) if e.session_id == other.id]
    assert events[mine[-1]].type is EventType.SESSION_DELETED
    # Some write of the other session committed while the deletion was under way.
    assert any(mine[0] < i < mine[-1] for i in theirs), "the deletion held up the other writer"
    after = _everything(kv)
    gone = {session_id, *members}
    for cf, entries in after.items():
        assert not any(k[:16] in gone or k[-16:] in gone for k in entries), cf
    assert set(after["nodes"]) - set(before["nodes"]) <= {e.node.id for e in events if e.node}
    counts = service.store.counts()
    assert counts.nodes[NodeKind.RESPONSE] == 0 and counts.tokens.total_tokens == 0
    assert service.get_node(agent_id).kind is NodeKind.AGENT


def test_no_reader_sees_a_session_half_deleted(
    kv: KeyValueStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("memorygraph.graph.deletion.STEP_NODES", 50)
    service = GraphService(GraphStore(kv))
    session_id, members, agent_id = _big_session(service, 100)
    seen: list[dict[str, Any]] = []
    step = service.store.deletion_step

    def look_then_step(sid: bytes, limit: int, after: bytes) -> Any:
        seen.append(
            {
                "session": service.has_node(sid),
                "members": sum(service.has_node(m) for m in members),
                "listed": len(list(service.store.scan_session(sid))),
                "agent_edges": len(service.get_edges(agent_id, Direction.BOTH, [])),
                "sessions": [
                    n.id
                    for n in service.list_sessions(
                        limit=0, page_token="", state=None, user_id=""
                    ).nodes
                ],
            }
        )
        return step(sid, limit, after)

    monkeypatch.setattr(service.store, "deletion_step", look_then_step)
    service.delete_session(session_id)
    assert len(seen) > 3
    for view in seen:
        assert view == {
            "session": False,
            "members": 0,
            "listed": 0,
            "agent_edges": 0,
            "sessions": [],
        }


def test_ids_of_a_session_being_deleted_stay_taken(
    kv: KeyValueStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    service = GraphService(GraphStore(kv))
    session_id, members, _ = _big_session(service, 10)
    export = service.archive.export_session(session_id)
    service.deletion.stop()  # hides, then stops before the first step: as after a crash
    with pytest.raises(Unavailable, match="finishes when the server starts again"):
        service.delete_session(session_id)
    with pytest.raises(NotFound):
        service.get_session(session_id)
    with pytest.raises(AlreadyExists):
        service.create_session(NewSession(session_id=session_id))
    with pytest.raises(AlreadyExists):
        service.create_node(NewNode(NodeKind.AGENT, node_id=members[0]))
    with pytest.raises(FailedPrecondition, match="being deleted"):
        service.archive.restore_session(export)


def test_a_deletion_cut_short_finishes_after_a_restart(tmp_path: Path) -> None:
    store = GraphStore(RocksStore(tmp_path / "db"))
    service = GraphService(store)
    session_id, members, agent_id = _big_session(service, 700)
    steps = 0
    step = store.deletion_step

    def crash_after_two(sid: bytes, limit: int, after: bytes) -> Any:
        nonlocal steps
        steps += 1
        if steps == 3:
            service.deletion.stop()  # what a kill would leave: hidden, two steps done
        return step(sid, limit, after)

    store.deletion_step = crash_after_two  # type: ignore[method-assign]
    with pytest.raises(Unavailable):
        service.delete_session(session_id)
    store.close()

    reopened = GraphStore(RocksStore(tmp_path / "db"))
    try:
        again = GraphService(reopened)
        assert not again.has_node(session_id)
        assert not any(again.has_node(m) for m in members)
        assert reopened.sessions_being_deleted() == [session_id]
        again.deletion.resume()
        assert reopened.sessions_being_deleted() == []
        assert reopened.counts().nodes[NodeKind.PROMPT] == 0
        assert reopened.counts().edges == 0
        assert again.get_node(agent_id).kind is NodeKind.AGENT
        kv = reopened.kv
        assert set(_raw(kv, "nodes")) == {agent_id}
        assert _raw(kv, "by_session") == {} and _raw(kv, "edges_out") == {}
    finally:
        reopened.close()


def test_a_server_killed_during_a_deletion_shows_the_session_whole_or_not_at_all(
    tmp_path: Path,
) -> None:
    server = ServerProcess(tmp_path / "data").start()
    try:
        with grpc.insecure_channel(server.address) as channel:
            stub = MemoryGraphServiceStub(channel)
            session = stub.CreateSession(pb.CreateSessionRequest())
            add_prompts(stub, session.id, 3000, batch=500)
            members = [
                node.id
                for batch in stub.StreamQuery(
                    pb.StreamQueryRequest(filter=pb.QueryFilter(session_id=session.id))
                )
                for node in batch.nodes
            ]
            deleting = stub.DeleteSession.future(
                pb.DeleteSessionRequest(session_id=session.id), timeout=60
            )
            while not deleting.done():  # kill as soon as the session is hidden
                try:
                    stub.GetSession(pb.GetSessionRequest(session_id=session.id), timeout=5)
                except grpc.RpcError:
                    break
        server.kill()
        server.start()
        with grpc.insecure_channel(server.address) as channel:
            stub = MemoryGraphServiceStub(channel)
            found = stub.BatchGetNodes(pb.BatchGetNodesRequest(node_ids=[session.id, *members]))
            assert len(found.nodes) in (0, len(members) + 1), "a session half deleted is visible"
            health = stub.GetMetrics(pb.GetMetricsRequest())
            for _ in range(100):  # the restarted server finishes the deletion by itself
                health = stub.GetMetrics(pb.GetMetricsRequest())
                if health.nodes_by_kind["prompt"] in (0, len(members)):
                    break
                time.sleep(0.1)
            assert health.nodes_by_kind["prompt"] in (0, len(members))
    finally:
        server.stop()


def test_an_archival_that_meets_a_deletion_finds_the_session_gone(
    kv: KeyValueStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    """ArchiveSession exports first and deletes under the writers' lock; a DeleteSession that
    hides the session in between (hiding records no event) must make it NotFound, not archive
    a session whose history can no longer be erased."""
    service = GraphService(GraphStore(kv))
    session_id, _, _ = _big_session(service, 5)
    digest = service.archive.export_for_archive(session_id).sha256()
    archivable = service.archive._archivable

    def exported_then_hidden(*args: Any, **kwargs: Any) -> Any:
        export = archivable(*args, **kwargs)
        with service._writer.transaction() as tx:
            tx.hide_sessions.append(session_id)
        return export

    monkeypatch.setattr(service.archive, "_archivable", exported_then_hidden)
    with pytest.raises(NotFound):
        service.archive.archive_session(session_id, content_sha256=digest)
    monkeypatch.undo()
    service.deletion.finish(session_id)
    events = service.store.events.read(1, service.store.events.last_sequence, 100_000)
    assert not any(e.type is EventType.SESSION_ARCHIVED for e in events)
    assert events[-1].type is EventType.SESSION_DELETED


def test_a_session_and_all_its_nodes_disappear_from_reads_together(kv: KeyValueStore) -> None:
    service = GraphService(GraphStore(kv))
    session_id, members, _ = _big_session(service, 3000)
    last = members[-1]
    torn = 0
    stop = threading.Event()

    def read() -> None:
        nonlocal torn
        while not stop.is_set():
            session_gone = not service.has_node(session_id)
            if session_gone and service.has_node(last):
                torn += 1

    reader = threading.Thread(target=read)
    reader.start()
    try:
        service.delete_session(session_id)
    finally:
        stop.set()
        reader.join()
    assert torn == 0
