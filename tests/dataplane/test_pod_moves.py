"""Shards move between the pod members of a graph while it serves (`TakeShard` on the target's
peer port, as the operator asks for it): the data follows, every member routes to the new
owner, counts stay exact, writes go on and none is lost, a move cut short finishes when asked
again, and a map that moves a shard by itself is still refused."""

from __future__ import annotations

import contextlib
import itertools
import threading
import time
import uuid
from collections.abc import Iterable, Iterator
from pathlib import Path

import grpc
import pytest
from memorygraph.errors import ConfigError, Unavailable
from memorygraph.model import NodeKind, parse_id
from memorygraph.server import RunningServer, start_server
from memorygraph.store.shards import Shards
from memorygraph.v1 import graph_pb2 as pb
from memorygraph.v1 import workers_pb2 as wpb
from memorygraph.v1.graph_pb2_grpc import MemoryGraphServiceStub
from memorygraph.v1.workers_pb2_grpc import WorkerPeerStub
from prometheus_client import REGISTRY

from .pods_support import PodLayout, PodProcess, Writers, running_pods, session_nodes


def _stub(address: str) -> MemoryGraphServiceStub:
    return MemoryGraphServiceStub(grpc.insecure_channel(address))


def _peer(layout: PodLayout, member: int) -> WorkerPeerStub:
    return WorkerPeerStub(grpc.insecure_channel(layout.peer_address(member)))


def _shard(text: str) -> int:
    return Shards(64).of_id(parse_id(text, "id"))


def _take(layout: PodLayout, member: int, shard: int) -> wpb.PeerTakeShardResponse:
    response: wpb.PeerTakeShardResponse = _peer(layout, member).TakeShard(
        wpb.PeerTakeShardRequest(shard=shard), metadata=layout.peer_metadata(), timeout=60
    )
    return response


def _view(layout: PodLayout, member: int) -> tuple[list[int], list[int]]:
    view = _peer(layout, member).Shards(
        wpb.PeerShardsRequest(), metadata=layout.peer_metadata(), timeout=10
    )
    return list(view.owners), list(view.epochs)


def _totals(stub: MemoryGraphServiceStub) -> tuple[int, int, int]:
    metrics = stub.GetMetrics(pb.GetMetricsRequest())
    return metrics.sessions, metrics.nodes_by_kind["prompt"], metrics.edges


def _sample(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


@pytest.fixture
def layout(tmp_path: Path) -> PodLayout:
    return PodLayout(tmp_path / "graph", count=3)


@pytest.fixture
def pods(layout: PodLayout) -> Iterator[list[RunningServer]]:
    with running_pods(layout) as started:
        yield started


def _fill(
    stub: MemoryGraphServiceStub, layout: PodLayout, sessions: int = 24
) -> dict[str, list[str]]:
    """Sessions with two prompts each: session id -> prompt ids; `sessions` of them, and more
    until member 0 owns one (the moves take one of its shards)."""
    made: dict[str, list[str]] = {}
    for i in itertools.count():
        if len(made) >= sessions and any(layout.owners[_shard(s)] == 0 for s in made):
            break
        session = stub.CreateSession(pb.CreateSessionRequest(title=f"s{i}")).id
        prompts = [
            stub.AddPrompt(pb.AddPromptRequest(session_id=session, content=f"q{i}.{j}")).id
            for j in range(2)
        ]
        made[session] = prompts
    return made


def _session_on(shard: int) -> str:
    """A session id of `shard`, as a caller may choose one."""
    return next(i for i in (str(uuid.uuid4()) for _ in itertools.count()) if _shard(i) == shard)


def _busiest_shard_of(layout: PodLayout, member: int, sessions: Iterable[str]) -> int:
    on = [_shard(s) for s in sessions if layout.owners[_shard(s)] == member]
    return max(set(on), key=on.count)


def test_a_shard_moves_to_another_member_with_its_data_and_counts(
    layout: PodLayout, pods: list[RunningServer]
) -> None:
    stub = _stub(layout.address(2))
    sessions = _fill(stub, layout)
    shard = _busiest_shard_of(layout, 0, sessions)
    moving = [s for s in sessions if _shard(s) == shard]
    totals = _totals(stub)
    before = [running.store.counts().sessions for running in pods]
    moves_done = _sample("memorygraph_shard_moves_total", outcome="done")
    fences = _sample("memorygraph_shard_move_fence_seconds_count")

    taken = _take(layout, 1, shard)

    assert taken.shard_epoch == 1 and taken.copied_keys > 0
    assert 0 < taken.fenced_seconds < 4
    assert _sample("memorygraph_shard_moves_total", outcome="done") == moves_done + 1
    assert _sample("memorygraph_shard_move_fence_seconds_count") == fences + 1
    for member in range(3):  # every member took the hand-over: the target told them
        owners, epochs = _view(layout, member)
        assert (owners[shard], epochs[shard]) == (1, 1)
        assert owners[:shard] + owners[shard + 1 :] == (
            layout.owners[:shard] + layout.owners[shard + 1 :]
        )
        routes = _stub(layout.address(member)).GetShardMap(pb.GetShardMapRequest())
        assert routes.owners[shard] == 1 and routes.epoch == 2  # map epoch 1 + one move
    after = [running.store.counts().sessions for running in pods]
    assert after == [before[0] - len(moving), before[1] + len(moving), before[2]]
    assert not pods[0].store.holds_shard(shard)  # the source dropped its copy
    for member in range(3):
        own = _stub(layout.address(member))
        assert _totals(own) == totals
        for session, prompts in sessions.items():
            for prompt in prompts:
                assert own.GetNode(pb.GetNodeRequest(node_id=prompt)).session_id == session
    # New writes of the moved shard land on its new owner, from any member.
    _stub(layout.address(0)).AddPrompt(pb.AddPromptRequest(session_id=moving[0], content="more"))
    assert pods[1].store.counts().nodes[NodeKind.PROMPT] == 2 * (before[1] + len(moving)) + 1
    # Asked again, the move is done: nothing is copied.
    again = _take(layout, 1, shard)
    assert (again.shard_epoch, again.copied_keys) == (1, 0)


def test_the_map_records_a_move_afterwards_and_cannot_move_a_shard_by_itself(
    layout: PodLayout, pods: list[RunningServer]
) -> None:
    sessions = _fill(_stub(layout.address(0)), layout, sessions=8)
    shard = _busiest_shard_of(layout, 0, sessions)
    _take(layout, 1, shard)
    # The operator records the move: shard on member 1 since its epoch 1, map epoch 2.
    layout.owners[shard] = 1
    layout.shard_epochs = [0] * 64
    layout.shard_epochs[shard] = 1
    layout.epoch = 2
    layout.write_map()
    for member in range(3):
        stub = _stub(layout.address(member))
        deadline = time.monotonic() + 10
        while stub.GetShardMap(pb.GetShardMapRequest()).epoch != 3:  # 2 + the shard's 1
            assert time.monotonic() < deadline, "the map recording the move was not taken"
            time.sleep(0.2)
    # A map that gives one of member 0's shards to member 2 without a move is not taken.
    other = next(s for s in range(64) if layout.owners[s] == 0)
    layout.owners[other] = 2
    layout.shard_epochs[other] = 1
    layout.epoch = 3
    layout.write_map()
    time.sleep(3)  # two map polls
    for member in (0, 2):
        owners, _ = _view(layout, member)
        assert owners[other] == 0
    routes = _stub(layout.address(0)).GetShardMap(pb.GetShardMapRequest())
    assert routes.owners[other] == 0 and routes.epoch == 3
    # That map in the file does not hold up a move meanwhile.
    third = next(s for s in range(64) if layout.owners[s] == 0 and s != other)
    assert _take(layout, 2, third).shard_epoch == 1
    for member in range(3):
        assert _view(layout, member)[0][third] == 2
    # Nor is it taken by a member that restarts: it holds that shard's data.
    _stub(layout.address(0)).CreateSession(pb.CreateSessionRequest(session_id=_session_on(other)))
    pods[0].stop(grace=1)
    with pytest.raises(ConfigError, match=f"gives shard {other} to member 2, but this volume"):
        start_server(layout.config(0))


def test_writes_go_on_while_a_shard_moves_and_none_is_lost(
    layout: PodLayout, pods: list[RunningServer]
) -> None:
    sessions = _fill(_stub(layout.address(0)), layout, sessions=16)
    shard = _busiest_shard_of(layout, 0, sessions)
    written: list[str] = []
    failed: list[str] = []
    done = threading.Event()

    def write(member: int) -> None:
        stub = _stub(layout.address(member))
        i = 0
        while not done.is_set():
            for session in sessions:
                try:
                    added = stub.AddPrompt(
                        pb.AddPromptRequest(session_id=session, content=f"w{member}.{i}"),
                        timeout=10,
                    )
                except grpc.RpcError as error:  # refused while fenced: not acknowledged
                    failed.append(error.code().name)
                    continue
                written.append(added.id)
                i += 1

    writers = [threading.Thread(target=write, args=(m,)) for m in (0, 2)]
    for writer in writers:
        writer.start()
    try:
        time.sleep(0.5)
        taken = _take(layout, 1, shard)
        time.sleep(0.5)
    finally:
        done.set()
        for writer in writers:
            writer.join(30)
    assert taken.shard_epoch == 1
    assert set(failed) <= {"UNAVAILABLE"}
    moved = [p for p in written if _shard(p) == shard]
    assert moved, "no write reached the moving shard"
    for member in range(3):
        own = _stub(layout.address(member))
        for prompt in written:
            assert own.GetNode(pb.GetNodeRequest(node_id=prompt)).id == prompt
        total = own.GetMetrics(pb.GetMetricsRequest()).nodes_by_kind["prompt"]
        assert total == 2 * len(sessions) + len(written)


def test_a_move_whose_answer_was_lost_finishes_by_itself(
    layout: PodLayout, pods: list[RunningServer]
) -> None:
    """The source took the hand-over but its answer never came back: the target says so,
    then takes the shard by itself at its next map poll (it asks the source again); calls
    about the shard answer UNAVAILABLE meanwhile, never from a stale copy."""
    stub = _stub(layout.address(0))
    sessions = _fill(stub, layout, sessions=8)
    shard = _busiest_shard_of(layout, 0, sessions)
    moving = next(s for s in sessions if _shard(s) == shard)
    totals = _totals(stub)
    source = pods[1].store.kv.peers[0]  # member 1's way to member 0
    handed = source.hand_over

    def lost_answer(*args: int, **options: float) -> None:
        handed(*args, **options)  # member 0 takes it each time; member 1 never hears back
        raise Unavailable("the answer was lost")

    source.hand_over = lost_answer
    try:
        with pytest.raises(grpc.RpcError) as info:
            _take(layout, 1, shard)
        assert info.value.code() == grpc.StatusCode.UNAVAILABLE
        assert "ask for the move again" in (info.value.details() or "")
    finally:
        source.hand_over = handed
    assert _view(layout, 0)[0][shard] == 1  # the point of no return was passed
    deadline = time.monotonic() + 10
    while _view(layout, 1)[0][shard] != 1:
        assert time.monotonic() < deadline, "the target did not take the shard by itself"
        time.sleep(0.2)
    again = _take(layout, 1, shard)  # what is left: the source's copy is dropped
    assert (again.shard_epoch, again.copied_keys) == (1, 0)
    for member in range(3):
        own = _stub(layout.address(member))
        assert _view(layout, member)[0][shard] == 1
        assert _totals(own) == totals
        for prompts in sessions.values():
            for prompt in prompts:
                own.GetNode(pb.GetNodeRequest(node_id=prompt))
    assert not pods[0].store.holds_shard(shard)
    before = pods[1].store.counts().nodes[NodeKind.PROMPT]
    for member in range(3):
        _stub(layout.address(member)).AddPrompt(pb.AddPromptRequest(session_id=moving, content="+"))
    assert pods[1].store.counts().nodes[NodeKind.PROMPT] == before + 3


def test_a_call_passed_on_to_a_member_not_owning_its_shard_is_not_run_there(
    layout: PodLayout, pods: list[RunningServer]
) -> None:
    """Two members that disagree about a shard's owner for a moment (one has not heard of the
    hand-over) pass its calls to each other: the one not owning it answers UNAVAILABLE."""
    session = _stub(layout.address(1)).CreateSession(pb.CreateSessionRequest()).id
    owner = layout.owners[_shard(session)]
    other = (owner + 1) % 3
    passed_on = (*layout.peer_metadata(), ("x-memorygraph-worker", str(owner)))
    stub = MemoryGraphServiceStub(grpc.insecure_channel(layout.peer_address(other)))
    with pytest.raises(grpc.RpcError) as info:
        stub.GetNode(pb.GetNodeRequest(node_id=session), metadata=passed_on, timeout=10)
    assert info.value.code() == grpc.StatusCode.UNAVAILABLE
    assert "handed over" in (info.value.details() or "")
    owning = MemoryGraphServiceStub(grpc.insecure_channel(layout.peer_address(owner)))
    assert owning.GetNode(pb.GetNodeRequest(node_id=session), metadata=passed_on).id == session


def test_a_source_that_restarts_after_the_hand_over_drops_what_it_handed_over(
    layout: PodLayout, pods: list[RunningServer]
) -> None:
    stub = _stub(layout.address(2))
    sessions = _fill(stub, layout, sessions=8)
    shard = _busiest_shard_of(layout, 0, sessions)
    totals = _totals(stub)
    source = pods[1].store.kv.peers[0]
    dropping = source.drop
    source.drop = lambda shard: (_ for _ in ()).throw(Unavailable("no answer"))
    try:
        with pytest.raises(grpc.RpcError):
            _take(layout, 1, shard)
    finally:
        source.drop = dropping
    assert pods[0].store.holds_shard(shard)  # handed over, not dropped yet
    pods[0].stop(grace=1)
    pods[0] = start_server(layout.config(0))
    assert not pods[0].store.holds_shard(shard)
    assert _view(layout, 0)[0][shard] == 1
    for member in range(3):
        assert _totals(_stub(layout.address(member))) == totals


def test_a_hand_over_of_a_members_own_shard_needs_the_callers_lock(
    layout: PodLayout, pods: list[RunningServer]
) -> None:
    shard = next(s for s in range(64) if layout.owners[s] == 0)
    request = wpb.PeerReassignRequest(handover=True, shard=shard, owner=1, shard_epoch=1)
    with pytest.raises(grpc.RpcError) as info:
        _peer(layout, 0).Reassign(request, metadata=layout.peer_metadata(), timeout=10)
    assert info.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert "writers' lock" in (info.value.details() or "")
    assert _view(layout, 0)[0][shard] == 0
    with pytest.raises(grpc.RpcError) as info:  # a shard that does not exist
        _take(layout, 1, 64)
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    with pytest.raises(grpc.RpcError) as info:  # without the peer key
        _peer(layout, 1).TakeShard(wpb.PeerTakeShardRequest(shard=shard), timeout=10)
    assert info.value.code() == grpc.StatusCode.UNAUTHENTICATED


def _take_until_done(layout: PodLayout, member: int, shard: int, timeout: float = 60) -> None:
    """Ask for the move until it is done (members come back meanwhile)."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            _take(layout, member, shard)
            return
        except grpc.RpcError as error:
            if time.monotonic() > deadline:
                raise
            assert error.code() in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED)
            time.sleep(0.5)


def _kill_at(member: PodProcess, log: Path, line: str, timeout: float = 30) -> None:
    """kill -9 `member` as soon as `log` says `line`."""
    deadline = time.monotonic() + timeout
    while line not in log.read_text(errors="replace"):
        assert time.monotonic() < deadline, f"{log.name} never said {line!r}"
        time.sleep(0.002)
    member.kill()


@pytest.mark.slow
@pytest.mark.parametrize(
    ("killed", "when"),
    [(1, "copying"), (1, "handed over"), (0, "copying"), (0, "handed over")],
    ids=["target-copying", "target-handed-over", "source-copying", "source-handed-over"],
)
def test_a_member_killed_amid_a_move_loses_nothing_and_the_move_finishes(
    tmp_path: Path, killed: int, when: str
) -> None:
    """kill -9 the target or the source while the shard is copied, or just past the point of no
    return (the source recorded the hand-over; the target has not told the others nor had the
    source drop its copy): asked again, the move finishes, and nothing acknowledged is lost."""
    layout = PodLayout(tmp_path / "graph")
    members = [PodProcess(layout, m).start() for m in range(2)]
    try:
        stub = _stub(layout.address(0))
        sessions = [stub.CreateSession(pb.CreateSessionRequest()).id for _ in range(48)]
        shard = _busiest_shard_of(layout, 0, sessions)
        on_shard = [s for s in sessions if _shard(s) == shard]
        for session in on_shard:  # enough to copy that a kill lands amid it
            for _ in range(150):
                stub.AddPrompt(pb.AddPromptRequest(session_id=session, content="x" * 4000))
        # There and back first: both members hold records of the shard's earlier hand-overs.
        assert _take(layout, 1, shard).shard_epoch == 1
        assert _take(layout, 0, shard).shard_epoch == 2
        writers = Writers(layout.address(1 - killed), on_shard + sessions[:4])

        def move() -> None:
            with contextlib.suppress(grpc.RpcError):  # the kill may cut it short
                _take(layout, 1, shard)

        moving = threading.Thread(target=move)
        moving.start()
        if when == "copying":
            _kill_at(members[killed], members[1].log, f"moving shard {shard} here")
        else:
            _kill_at(members[killed], members[0].log, f"shard {shard} is member 1's")
        moving.join(60)
        members[killed].start()
        _take_until_done(layout, 1, shard)
        time.sleep(0.5)
        writers.stop()
        for member in (0, 1):
            assert _view(layout, member)[0][shard] == 1
            assert _view(layout, member)[1][shard] == 3
            own = _stub(layout.address(member))
            listed = {s: session_nodes(own, s) for s in sessions}
            for session, acknowledged in writers.acknowledged.items():
                assert listed[session] >= set(acknowledged)
            prompts = sum(len(found) for found in listed.values())  # a session's nodes
            metrics = own.GetMetrics(pb.GetMetricsRequest())
            assert metrics.nodes_by_kind["prompt"] == prompts  # counted once, wherever
        assert min(writers.counts().values()) > 5
        prefix = shard.to_bytes(2)  # the source's engine keeps nothing of the shard
        left = _peer(layout, 0).Read(
            wpb.PeerReadRequest(family="nodes", scan=True, start=prefix, end=prefix + b"\xff"),
            metadata=layout.peer_metadata(),
            timeout=10,
        )
        assert not left.keys
    finally:
        for member in members:
            if member.proc is not None:
                member.stop()
