"""MoveShard: a shard moved to another worker while clients write through the graph's address
and straight to the workers: every acknowledged write is there once, counts and the event log
stay exact, the map's epoch moves on, and the old owner keeps nothing of the shard."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest
from memorygraph.client import Client
from memorygraph.config import load_config
from memorygraph.errors import RequestError, Unavailable
from memorygraph.model import EventType, parse_id
from memorygraph.server import RunningServer, start_server
from memorygraph.servicers import moving, peers
from memorygraph.servicers.moving import ShardMover
from memorygraph.store import GraphStore
from memorygraph.store.shards import Shards
from memorygraph.v1 import graph_pb2 as pb
from memorygraph.v1.graph_pb2_grpc import MemoryGraphServiceStub

from .conftest import REPO, start_workers


@pytest.fixture
def workers(tmp_path: Path) -> Iterator[list[RunningServer]]:
    servers = start_workers(tmp_path / "data", 2)
    yield servers
    for server in servers:
        server.stop(grace=1)


def _shard(text: str) -> int:
    return Shards(64).of_id(parse_id(text, "id"))


def _stub(servers: list[RunningServer]) -> MemoryGraphServiceStub:
    return MemoryGraphServiceStub(grpc.insecure_channel(f"127.0.0.1:{servers[0].port}"))


def _writers(
    workers: list[RunningServer],
    sessions: list[str],
    acknowledged: list[tuple[str, str]],
    stop: threading.Event,
) -> list[threading.Thread]:
    """A writer per session until `stop`, half through clients that route; each prompt
    acknowledged goes in `acknowledged` with its session."""
    lock = threading.Lock()

    def write(session_id: str, routed: bool) -> None:
        with Client(f"127.0.0.1:{workers[0].port}", timeout=10, route=routed) as mg:
            while not stop.is_set():
                try:
                    node = mg.add_prompt(session_id, "x")
                except RequestError:  # a fence longer than a lock wait: try again
                    time.sleep(0.01)
                    continue
                with lock:
                    acknowledged.append((node.id, session_id))

    threads = [threading.Thread(target=write, args=(s, i % 2 == 0)) for i, s in enumerate(sessions)]
    for thread in threads:
        thread.start()
    return threads


def test_shards_moved_while_clients_write_keep_every_acknowledged_write_once(
    workers: list[RunningServer],
) -> None:
    stub = _stub(workers)
    sessions = [stub.CreateSession(pb.CreateSessionRequest()).id for _ in range(16)]
    moved = sorted({_shard(s) for s in sessions})[:3]
    acknowledged: list[tuple[str, str]] = []  # (prompt id, session id)
    stop = threading.Event()
    threads = _writers(workers, sessions, acknowledged, stop)
    results = []
    try:
        time.sleep(0.3)
        for round_ in range(2):  # each shard to the other worker, and back
            for shard in moved:
                owner = stub.GetShardMap(pb.GetShardMapRequest()).owners[shard]
                to = 1 - owner if round_ == 0 else owner ^ 1
                results.append(
                    stub.MoveShard(pb.MoveShardRequest(shard=shard, worker=to), timeout=60)
                )
                time.sleep(0.1)
    finally:
        stop.set()
        for thread in threads:
            thread.join(30)
    shard_map = stub.GetShardMap(pb.GetShardMapRequest())
    assert shard_map.epoch == 1 + 2 * len(moved)
    assert [r.epoch for r in results] == list(range(2, 2 + 2 * len(moved)))
    assert all(r.fenced_seconds < 5 for r in results)
    assert len(acknowledged) > 100
    for prompt_id, session_id in acknowledged:
        assert stub.GetNode(pb.GetNodeRequest(node_id=prompt_id)).session_id == session_id
    metrics = stub.GetMetrics(pb.GetMetricsRequest())
    assert metrics.nodes_by_kind["prompt"] == len(acknowledged)
    assert metrics.sessions == len(sessions)
    for server in workers:  # the old owners dropped their copies
        owned = [s for s in range(64) if shard_map.owners[s] == workers.index(server)]
        for shard in moved:
            assert server.store.holds_shard(shard) == (shard in owned)
    # The whole log, merged over the workers: every prompt's event once, in sequence order.
    events = stub.StreamEvents(pb.StreamEventsRequest(from_sequence=1), timeout=60)
    seen: list[int] = []
    created: set[str] = set()
    expected = {p for p, _ in acknowledged}
    deadline = time.monotonic() + 30
    for event in events:
        seen.append(event.sequence)
        if event.type == pb.EVENT_TYPE_NODE_CREATED and event.node.kind == pb.NODE_KIND_PROMPT:
            assert event.node.id not in created
            created.add(event.node.id)
        if created >= expected or time.monotonic() > deadline:
            break
    events.cancel()
    assert created == expected
    assert seen == sorted(set(seen))


def test_moving_a_shard_is_refused_clearly(workers: list[RunningServer]) -> None:
    stub = _stub(workers)
    with pytest.raises(grpc.RpcError) as info:
        stub.MoveShard(pb.MoveShardRequest(shard=0, worker=5))
    assert info.value.code() is grpc.StatusCode.INVALID_ARGUMENT
    assert "there is no worker 5" in info.value.details()
    with pytest.raises(grpc.RpcError) as info:
        stub.MoveShard(pb.MoveShardRequest(shard=64, worker=1))
    assert info.value.code() is grpc.StatusCode.INVALID_ARGUMENT
    assert "there is no shard 64" in info.value.details()
    # A shard on its worker already: nothing to do, the map stays.
    answer = stub.MoveShard(pb.MoveShardRequest(shard=1, worker=1))
    assert (answer.epoch, answer.copied_keys) == (1, 0)


def test_workers_stopped_right_after_a_hand_over_finish_the_move_when_they_start(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The map names the new owner, but no worker took it (the moving worker stopped at
    once): started again, the new owner counts the shard in, the old one counts it out and
    drops it, and moving the shard again finishes the move."""
    servers = start_workers(tmp_path / "data", 2)
    stub = _stub(servers)
    sessions = [stub.CreateSession(pb.CreateSessionRequest()).id for _ in range(8)]
    prompts = [stub.AddPrompt(pb.AddPromptRequest(session_id=s, content="q")).id for s in sessions]
    shard = _shard(sessions[0])
    owner = stub.GetShardMap(pb.GetShardMapRequest()).owners[shard]
    before = stub.GetMetrics(pb.GetMetricsRequest())

    def stopped(self: ShardMover, move: object) -> None:
        raise RuntimeError("the moving worker stopped here")

    monkeypatch.setattr(ShardMover, "_after_commit", stopped)
    with pytest.raises(grpc.RpcError):
        stub.MoveShard(pb.MoveShardRequest(shard=shard, worker=1 - owner), timeout=30)
    monkeypatch.undo()
    for server in servers:
        server.stop(grace=1)
    servers = start_workers(tmp_path / "data", 2)
    try:
        stub = _stub(servers)
        assert stub.GetShardMap(pb.GetShardMapRequest()).owners[shard] == 1 - owner
        assert not servers[owner].store.holds_shard(shard)
        after = stub.GetMetrics(pb.GetMetricsRequest())
        assert (after.sessions, after.nodes_by_kind["prompt"], after.edges) == (
            before.sessions,
            before.nodes_by_kind["prompt"],
            before.edges,
        )
        for prompt in prompts:
            assert stub.GetNode(pb.GetNodeRequest(node_id=prompt)).id == prompt
        done = stub.MoveShard(pb.MoveShardRequest(shard=shard, worker=1 - owner), timeout=30)
        assert done.epoch == 2
        assert not (tmp_path / "data" / "moving.json").exists()
        stub.AddPrompt(pb.AddPromptRequest(session_id=sessions[0], content="after"))
        assert stub.GetMetrics(pb.GetMetricsRequest()).nodes_by_kind["prompt"] == len(prompts) + 1
    finally:
        for server in servers:
            server.stop(grace=1)


def test_the_cli_moves_a_shard_of_a_serving_graph(workers: list[RunningServer]) -> None:
    stub = _stub(workers)
    session = stub.CreateSession(pb.CreateSessionRequest()).id
    shard = _shard(session)
    to = 1 - stub.GetShardMap(pb.GetShardMapRequest()).owners[shard]
    env = {**os.environ, "PYTHONPATH": str(REPO / "dataplane")}
    server = f"127.0.0.1:{workers[0].port}"
    command = [sys.executable, "-m", "memorygraph", "--server", server, "shards", "move"]
    done = subprocess.run(
        [*command, str(shard), "--to", str(to)], capture_output=True, text=True, env=env
    )
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["epoch"] == "2"
    assert stub.GetShardMap(pb.GetShardMapRequest()).owners[shard] == to
    refused = subprocess.run(
        [*command, "99", "--to", str(to)], capture_output=True, text=True, env=env
    )
    assert refused.returncode == 1 and "there is no shard 99" in refused.stderr


def test_one_process_has_no_shards_to_move(tmp_path: Path) -> None:
    settings = {"data_dir": tmp_path / "one", "host": "127.0.0.1", "port": 0, "metrics_port": 0}
    server = start_server(load_config(None, settings, environ={}))
    try:
        stub = MemoryGraphServiceStub(grpc.insecure_channel(f"127.0.0.1:{server.port}"))
        with pytest.raises(grpc.RpcError) as info:
            stub.MoveShard(pb.MoveShardRequest(shard=0, worker=0))
        assert info.value.code() is grpc.StatusCode.FAILED_PRECONDITION
        assert "one process serving every shard" in info.value.details()
    finally:
        server.stop(grace=1)


def _read_until_ended(stream: object, into: list[pb.Event], ended: list[str]) -> None:
    try:
        for event in stream:  # type: ignore[attr-defined]
            into.append(event)
    except grpc.RpcError as error:
        ended.append(f"{error.code().name}: {error.details()}")


def test_event_streams_open_across_a_move_end_and_resume_with_no_gap_and_no_duplicate(
    workers: list[RunningServer],
) -> None:
    stub = _stub(workers)
    session = stub.CreateSession(pb.CreateSessionRequest()).id
    shard = _shard(session)
    to = 1 - stub.GetShardMap(pb.GetShardMapRequest()).owners[shard]
    streams = {
        "all": stub.StreamEvents(pb.StreamEventsRequest(from_sequence=1)),
        "session": stub.SubscribeToSession(
            pb.SubscribeToSessionRequest(session_id=session, from_sequence=1)
        ),
    }
    got: dict[str, list[pb.Event]] = {name: [] for name in streams}
    ended: dict[str, list[str]] = {name: [] for name in streams}
    readers = [
        threading.Thread(target=_read_until_ended, args=(streams[n], got[n], ended[n]))
        for n in streams
    ]
    for reader in readers:
        reader.start()
    prompts = [stub.AddPrompt(pb.AddPromptRequest(session_id=session, content="q")).id]
    time.sleep(0.3)
    stub.MoveShard(pb.MoveShardRequest(shard=shard, worker=to), timeout=30)
    prompts += [
        stub.AddPrompt(pb.AddPromptRequest(session_id=session, content="r")).id for _ in range(3)
    ]
    for reader in readers:
        reader.join(10)
    for name in streams:
        assert len(ended[name]) == 1 and ended[name][0].startswith("UNAVAILABLE"), ended[name]
        resume = int(ended[name][0].rsplit("from_sequence=", 1)[1])
        if name == "all":
            again = stub.StreamEvents(pb.StreamEventsRequest(from_sequence=resume))
        else:
            again = stub.SubscribeToSession(
                pb.SubscribeToSessionRequest(session_id=session, from_sequence=resume)
            )
        events = got[name]
        deadline = time.monotonic() + 20
        while not set(prompts) <= _created(events):
            assert time.monotonic() < deadline, f"{name}: prompts missing after the resume"
            events.append(next(again))
        again.cancel()
        sequences = [e.sequence for e in events]
        assert sequences == sorted(set(sequences)), f"{name}: a duplicate or out of order"
        assert [e.node.id for e in events if e.node.id in prompts] == prompts


def _created(events: list[pb.Event]) -> set[str]:
    return {e.node.id for e in events if e.type == pb.EVENT_TYPE_NODE_CREATED}


def test_a_hand_over_whose_mover_dies_while_fenced_is_taken_when_the_leases_run_out(
    workers: list[RunningServer], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The moving worker wrote the new map and died holding every lock: the others take the
    map when their leases run out, the moving worker finishes its part when it starts again,
    and asking for the move again drops the old copy."""
    monkeypatch.setattr(peers, "LEASE_SECONDS", 1.0)
    stub = _stub(workers)
    sessions = [stub.CreateSession(pb.CreateSessionRequest()).id for _ in range(6)]
    for session in sessions:
        stub.AddPrompt(pb.AddPromptRequest(session_id=session, content="q"))
    shard = _shard(sessions[0])
    source = stub.GetShardMap(pb.GetShardMapRequest()).owners[shard]
    target = 1 - source
    before = stub.GetMetrics(pb.GetMetricsRequest())

    def died(self: ShardMover, move: object) -> None:
        raise RuntimeError("the moving worker died here")

    monkeypatch.setattr(ShardMover, "_after_commit", died)
    monkeypatch.setattr(peers.GrpcPeer, "unlock", lambda self: None)  # dead: never unlocks
    with pytest.raises(grpc.RpcError):
        stub.MoveShard(pb.MoveShardRequest(shard=shard, worker=target), timeout=30)
    workers[target].stop(grace=1)
    time.sleep(1.5)  # the source's lease runs out: it takes the new map
    assert not workers[source].store.kv.workers.owns_shard(shard)
    monkeypatch.undo()
    workers[target] = start_server(workers[source].config, target)  # started again
    stub = _stub(workers)
    assert workers[target].store.kv.workers.owns_shard(shard)
    after = stub.GetMetrics(pb.GetMetricsRequest())
    assert (after.sessions, after.nodes_by_kind["prompt"]) == (
        before.sessions,
        before.nodes_by_kind["prompt"],
    )
    stub.AddPrompt(pb.AddPromptRequest(session_id=sessions[0], content="after"))
    done = stub.MoveShard(pb.MoveShardRequest(shard=shard, worker=target), timeout=30)
    assert done.epoch == 2
    assert not workers[source].store.holds_shard(shard)
    assert stub.GetMetrics(pb.GetMetricsRequest()).nodes_by_kind["prompt"] == len(sessions) + 1


def test_a_shard_of_large_nodes_moves_in_reads_within_the_message_limit(
    workers: list[RunningServer],
) -> None:
    stub = _stub(workers)
    session = stub.CreateSession(pb.CreateSessionRequest()).id
    for _ in range(10):  # 10 MB in all, over the 8 MiB a message may hold
        stub.AddPrompt(pb.AddPromptRequest(session_id=session, content="x" * 1_000_000))
    shard = _shard(session)
    to = 1 - stub.GetShardMap(pb.GetShardMapRequest()).owners[shard]
    done = stub.MoveShard(pb.MoveShardRequest(shard=shard, worker=to), timeout=60)
    assert done.copied_keys > 10
    query = pb.QueryRequest(filter=pb.QueryFilter(session_id=session), limit=1)
    assert len(stub.Query(query).nodes) == 1
    assert stub.GetMetrics(pb.GetMetricsRequest()).nodes_by_kind["prompt"] == 10


def test_two_moves_asked_at_once_run_one_after_the_other(workers: list[RunningServer]) -> None:
    stub = _stub(workers)
    sessions = [stub.CreateSession(pb.CreateSessionRequest()).id for _ in range(8)]
    owners = stub.GetShardMap(pb.GetShardMapRequest()).owners
    first = next(s for s in sessions if owners[_shard(s)] == 0)
    second = next(s for s in sessions if owners[_shard(s)] == 1)
    answers: list[object] = []

    def move(session: str, to: int) -> None:
        deadline = time.monotonic() + 30
        while True:
            try:
                request = pb.MoveShardRequest(shard=_shard(session), worker=to)
                answers.append(stub.MoveShard(request, timeout=60))
                return
            except grpc.RpcError as error:
                if error.code() is grpc.StatusCode.UNAVAILABLE and time.monotonic() < deadline:
                    continue  # the fence was not taken in time (a busy machine): again
                answers.append(error.code())
                return

    threads = [
        threading.Thread(target=move, args=(first, 1)),
        threading.Thread(target=move, args=(second, 0)),
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    done = [a for a in answers if isinstance(a, pb.MoveShardResponse)]
    assert done and all(a is grpc.StatusCode.FAILED_PRECONDITION for a in answers if a not in done)
    for session, to in ((first, 1), (second, 0)):  # the refused one, again: it runs now
        stub.MoveShard(pb.MoveShardRequest(shard=_shard(session), worker=to), timeout=60)
    shard_map = stub.GetShardMap(pb.GetShardMapRequest())
    assert (shard_map.owners[_shard(first)], shard_map.owners[_shard(second)]) == (1, 0)
    assert shard_map.epoch == 3
    assert stub.GetMetrics(pb.GetMetricsRequest()).sessions == len(sessions)


def test_a_fence_that_lasts_too_long_hands_nothing_over(
    workers: list[RunningServer], monkeypatch: pytest.MonkeyPatch
) -> None:
    stub = _stub(workers)
    session = stub.CreateSession(pb.CreateSessionRequest()).id
    stub.AddPrompt(pb.AddPromptRequest(session_id=session, content="q"))
    shard = _shard(session)
    owner = stub.GetShardMap(pb.GetShardMapRequest()).owners[shard]
    monkeypatch.setattr(moving, "FENCE_SECONDS", 0.0)
    with pytest.raises(grpc.RpcError) as info:
        stub.MoveShard(pb.MoveShardRequest(shard=shard, worker=1 - owner), timeout=60)
    assert info.value.code() is grpc.StatusCode.UNAVAILABLE
    assert "nothing was handed over" in info.value.details()
    shard_map = stub.GetShardMap(pb.GetShardMapRequest())
    assert (shard_map.epoch, shard_map.owners[shard]) == (1, owner)
    stub.AddPrompt(pb.AddPromptRequest(session_id=session, content="still served"))
    monkeypatch.undo()
    done = stub.MoveShard(pb.MoveShardRequest(shard=shard, worker=1 - owner), timeout=60)
    assert done.epoch == 2
    assert stub.GetMetrics(pb.GetMetricsRequest()).nodes_by_kind["prompt"] == 2


def test_a_worker_that_did_not_take_the_new_map_takes_it_when_its_lease_runs_out(
    workers: list[RunningServer], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(peers, "LEASE_SECONDS", 1.0)
    stub = _stub(workers)
    session = stub.CreateSession(pb.CreateSessionRequest()).id
    stub.AddPrompt(pb.AddPromptRequest(session_id=session, content="q"))
    shard = _shard(session)
    source = stub.GetShardMap(pb.GetShardMapRequest()).owners[shard]
    real = peers.GrpcPeer.reassign

    def lost(self: peers.GrpcPeer) -> None:
        raise Unavailable("the answer was lost")

    monkeypatch.setattr(peers.GrpcPeer, "reassign", lost)
    done = stub.MoveShard(pb.MoveShardRequest(shard=shard, worker=1 - source), timeout=60)
    monkeypatch.setattr(peers.GrpcPeer, "reassign", real)
    assert done.epoch == 2
    assert not workers[source].store.kv.workers.owns_shard(shard)  # took it at the lease's end
    assert not workers[source].store.holds_shard(shard)
    stub.AddPrompt(pb.AddPromptRequest(session_id=session, content="after"))
    assert stub.GetMetrics(pb.GetMetricsRequest()).nodes_by_kind["prompt"] == 2


def test_a_session_archived_just_before_the_fence_leaves_no_history_on_the_new_owner(
    workers: list[RunningServer], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Archival erases a session's events; done between the last catch-up and the fence, the
    fenced copy (which otherwise compares only the newest events) notices and compares all."""
    stub = _stub(workers)
    archived = stub.CreateSession(pb.CreateSessionRequest()).id
    shard = _shard(archived)
    kept = next(
        s
        for s in iter(lambda: stub.CreateSession(pb.CreateSessionRequest()).id, None)
        if _shard(s) == shard
    )
    for session in (archived, kept):
        stub.AddPrompt(pb.AddPromptRequest(session_id=session, content="q"))
    stub.CloseSession(pb.CloseSessionRequest(session_id=archived))
    source = stub.GetShardMap(pb.GetShardMapRequest()).owners[shard]
    real = ShardMover._fenced_hand_over

    def archive_first(self: ShardMover, move: object, source_engine: object, since: int) -> int:
        chunks = list(stub.ExportSession(pb.ExportSessionRequest(session_id=archived)))
        digest = next(c.summary.content_sha256 for c in chunks if c.HasField("summary"))
        stub.ArchiveSession(pb.ArchiveSessionRequest(session_id=archived, content_sha256=digest))
        return real(self, move, source_engine, since)  # type: ignore[arg-type]

    monkeypatch.setattr(ShardMover, "_fenced_hand_over", archive_first)
    stub.MoveShard(pb.MoveShardRequest(shard=shard, worker=1 - source), timeout=60)
    new_owner = workers[1 - source].store
    history = new_owner.events.read(0, 2**63, 100_000)
    left = {e.session_id for e in history if e.type is not EventType.SESSION_ARCHIVED}
    assert parse_id(archived, "id") not in left  # only the archive's own event is left
    assert parse_id(kept, "id") in {e.session_id for e in history}


def test_a_mover_stopped_after_counting_the_shard_in_but_before_the_map_undoes_it(
    workers: list[RunningServer], monkeypatch: pytest.MonkeyPatch
) -> None:
    stub = _stub(workers)
    sessions = [stub.CreateSession(pb.CreateSessionRequest()).id for _ in range(6)]
    for session in sessions:
        stub.AddPrompt(pb.AddPromptRequest(session_id=session, content="q"))
    shard = _shard(sessions[0])
    source = stub.GetShardMap(pb.GetShardMapRequest()).owners[shard]
    target = 1 - source

    def stopped(data_dir: object, placement: object) -> None:
        raise RuntimeError("the moving worker stopped before writing the map")

    monkeypatch.setattr(moving, "write_placement", stopped)
    with pytest.raises(grpc.RpcError):
        stub.MoveShard(pb.MoveShardRequest(shard=shard, worker=target), timeout=30)
    monkeypatch.undo()
    workers[target].stop(grace=1)
    workers[target] = start_server(workers[source].config, target)  # started again: undone
    stub = _stub(workers)
    counts = stub.GetMetrics(pb.GetMetricsRequest())
    assert (counts.sessions, counts.nodes_by_kind["prompt"]) == (6, 6)
    assert stub.GetShardMap(pb.GetShardMapRequest()).owners[shard] == source
    done = stub.MoveShard(pb.MoveShardRequest(shard=shard, worker=target), timeout=30)
    assert done.epoch == 2
    counts = stub.GetMetrics(pb.GetMetricsRequest())
    assert (counts.sessions, counts.nodes_by_kind["prompt"]) == (6, 6)


def test_a_count_in_that_outlasts_the_fence_hands_nothing_over_and_loses_nothing(
    workers: list[RunningServer], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The leases may run out while a large shard is counted in: the map is then not
    written, and a write the old owner took meanwhile stays."""
    monkeypatch.setattr(peers, "LEASE_SECONDS", 2.0)
    monkeypatch.setattr(moving, "FENCE_SECONDS", 1.5)
    stub = _stub(workers)
    session = stub.CreateSession(pb.CreateSessionRequest()).id
    stub.AddPrompt(pb.AddPromptRequest(session_id=session, content="q"))
    shard = _shard(session)
    source = stub.GetShardMap(pb.GetShardMapRequest()).owners[shard]
    slow = GraphStore.adopt_shard

    def slowly(self: GraphStore, *args: object, **kwargs: object) -> bool:
        time.sleep(2.5)  # as long as counting a large shard in
        return slow(self, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(GraphStore, "adopt_shard", slowly)
    written: list[str] = []

    def write_meanwhile() -> None:
        time.sleep(2.3)  # the leases have run out: the old owner writes again
        direct = MemoryGraphServiceStub(
            grpc.insecure_channel(f"127.0.0.1:{workers[0].port + 1 + source}")
        )
        request = pb.AddPromptRequest(session_id=session, content="meanwhile")
        written.append(direct.AddPrompt(request, timeout=10).id)

    writer = threading.Thread(target=write_meanwhile)
    writer.start()
    with pytest.raises(grpc.RpcError) as info:
        stub.MoveShard(pb.MoveShardRequest(shard=shard, worker=1 - source), timeout=30)
    writer.join(20)
    assert info.value.code() is grpc.StatusCode.UNAVAILABLE
    assert stub.GetShardMap(pb.GetShardMapRequest()).owners[shard] == source
    assert stub.GetNode(pb.GetNodeRequest(node_id=written[0])).content == "meanwhile"
    monkeypatch.undo()
    stub.MoveShard(pb.MoveShardRequest(shard=shard, worker=1 - source), timeout=30)
    assert stub.GetNode(pb.GetNodeRequest(node_id=written[0])).content == "meanwhile"
    assert stub.GetMetrics(pb.GetMetricsRequest()).nodes_by_kind["prompt"] == 2
