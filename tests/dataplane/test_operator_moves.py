"""The operator's moves (`memorygraph_operator.reconcile.moves`) against real pod members on
127.0.0.1: a graph grown from one pod to three gets its shards spread evenly, one shrunk to two
gets the leaving pod emptied first, moves the operator did not record (a lost answer, a move
made by hand) are taken into the map, and the pods take every map it writes afterwards. Every
session stays readable through every pod, and the counts stay exact."""

from __future__ import annotations

import asyncio
import dataclasses
import time
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest
from memorygraph.errors import Unavailable
from memorygraph.model import parse_id
from memorygraph.server import RunningServer
from memorygraph.servicers.podmoves import PodMover
from memorygraph.store.shards import Shards
from memorygraph.v1 import graph_pb2 as pb
from memorygraph.v1.graph_pb2_grpc import MemoryGraphServiceStub
from memorygraph_operator.api.conditions import Reason
from memorygraph_operator.api.memorygraph import MemoryGraphSpec
from memorygraph_operator.peers import GrpcPeers, Taken
from memorygraph_operator.reconcile.moves import Rebalance, rebalance
from memorygraph_operator.render.context import GraphInputs, MemberView, PendingMove, ShardMap
from memorygraph_operator.render.shardmap import plan_shard_map

from .conftest import free_port
from .pods_support import GRAPH_UID, PodLayout, running_pods

SHARDS = 16


class LocalPeers(GrpcPeers):
    """The operator's peers, with the pods' cluster addresses (`<graph>-<i>.<headless>...`)
    replaced by the members' ports on 127.0.0.1."""

    def __init__(self, layout: PodLayout) -> None:
        super().__init__()
        self.layout = layout
        self.nobody = f"127.0.0.1:{free_port()}"  # where pods not started are

    def _local(self, address: str) -> str:
        pod = int(address.split(".", 1)[0].rsplit("-", 1)[1])
        return self.layout.peer_address(pod) if pod < len(self.layout.peer_ports) else self.nobody

    async def view(self, address: str, key: str) -> MemberView:
        return await super().view(self._local(address), key)

    async def take(self, address: str, key: str, shard: int) -> Taken:
        return await super().take(self._local(address), key, shard)


class Recorder:
    """What the operator writes before each move: the map and the move asked for next."""

    def __init__(self) -> None:
        self.written: list[tuple[ShardMap, PendingMove]] = []

    async def __call__(self, m: ShardMap, move: PendingMove) -> bool:
        self.written.append((m, move))
        return True


def _stub(address: str) -> MemoryGraphServiceStub:
    return MemoryGraphServiceStub(grpc.insecure_channel(address))


def _shard(session: str) -> int:
    return Shards(SHARDS).of_id(parse_id(session, "id"))


def _graph(replicas: int, m: ShardMap, move: PendingMove | None = None) -> GraphInputs:
    spec = MemoryGraphSpec.model_validate({"replicas": replicas, "shards": SHARDS})
    return GraphInputs("g", "ns", GRAPH_UID, spec, shard_map=m, move=move)


def _write(layout: PodLayout, m: ShardMap) -> None:
    """Write `m` as the pods' map file, as the operator's ConfigMap reaches them."""
    layout.count = m.members
    layout.epoch, layout.owners = m.epoch, list(m.owners)
    layout.shard_epochs = list(m.shard_epochs)
    layout.write_map()


def _took(layout: PodLayout, peers: LocalPeers, key: str, m: ShardMap) -> None:
    """Wait until every pod of `m` serves by it (none refused it)."""
    deadline = time.monotonic() + 20
    while True:
        views = [asyncio.run(peers.view(f"g-{p}.x", key)) for p in range(m.members)]
        if all(v.map_epoch == m.epoch and v.owners == m.owners for v in views):
            return
        assert time.monotonic() < deadline, f"pods serve {views}, not the map {m}"
        time.sleep(0.2)


def _fill(stub: MemoryGraphServiceStub, sessions: int = 40) -> dict[str, list[str]]:
    made = {}
    for i in range(sessions):
        session = stub.CreateSession(pb.CreateSessionRequest(title=f"s{i}")).id
        made[session] = [
            stub.AddPrompt(pb.AddPromptRequest(session_id=session, content=f"q{i}.{j}")).id
            for j in range(2)
        ]
    return made


def _readable(layout: PodLayout, members: int, made: dict[str, list[str]]) -> None:
    for member in range(members):
        stub = _stub(layout.address(member))
        for session, prompts in made.items():
            for prompt in prompts:
                got = stub.GetNode(pb.GetNodeRequest(node_id=prompt))
                assert got.session_id == session
        metrics = stub.GetMetrics(pb.GetMetricsRequest())
        assert (metrics.sessions, metrics.nodes_by_kind["prompt"]) == (len(made), 2 * len(made))


@pytest.fixture
def layout(tmp_path: Path) -> PodLayout:
    # A graph grown from one pod to three: the map names three, pod 0 owns every shard.
    return PodLayout(tmp_path / "graph", count=3, shards=SHARDS, owners=[0] * SHARDS, epoch=2)


@pytest.fixture
def pods(layout: PodLayout) -> Iterator[list[RunningServer]]:
    with running_pods(layout) as started:
        yield started


def test_the_operator_spreads_shards_onto_new_pods_and_empties_leaving_ones(
    layout: PodLayout, pods: list[RunningServer]
) -> None:
    made = _fill(_stub(layout.address(0)))
    peers, key = LocalPeers(layout), layout.key_file.read_text().strip()
    grown = ShardMap(2, (0,) * SHARDS, 3)

    record = Recorder()
    spread: Rebalance = asyncio.run(rebalance(_graph(3, grown), peers, key, record))
    assert (spread.rebalancing, spread.reason, spread.move) == (False, Reason.BALANCED, None)
    assert sorted(spread.shard_map.spread()) == [5, 5, 6]
    assert len(spread.moved) == 10  # the fewest moves to 6/5/5
    assert all(t.fenced_seconds < 1 for t in spread.moved)
    assert spread.shard_map.epoch == grown.epoch + 10
    assert sum(spread.shard_map.shard_epochs) == 10
    # Each move was written with the map before it was asked for.
    assert [move.shard for _, move in record.written] == [
        s for s, e in enumerate(spread.shard_map.shard_epochs) if e
    ][::-1]
    _write(layout, spread.shard_map)
    _took(layout, peers, key, spread.shard_map)
    _readable(layout, 3, made)
    # Spread evenly: nothing to do, and no pod is asked.
    again = asyncio.run(rebalance(_graph(3, spread.shard_map), peers, key, record))
    assert (again.shard_map, again.moved, again.reason) == (spread.shard_map, (), Reason.BALANCED)

    # A move the operator did not record: made by hand, onto the pod about to leave.
    owned_by_0 = [s for s, o in enumerate(spread.shard_map.owners) if o == 0]
    by_hand = asyncio.run(peers.take("g-2.x", key, owned_by_0[0]))
    # ... and one whose answer it lost: recorded as under way, finished by the pods.
    lost = owned_by_0[1]
    lost_taken = asyncio.run(peers.take("g-1.x", key, lost))
    under_way = PendingMove(lost, 0, 1, spread.shard_map.shard_epoch(lost))
    shrunk = asyncio.run(rebalance(_graph(2, spread.shard_map, under_way), peers, key, record))
    assert (shrunk.rebalancing, shrunk.move) == (False, None)
    assert shrunk.shard_map.spread() == (8, 8, 0)
    assert shrunk.shard_map.owners[lost] == 1
    assert shrunk.shard_map.shard_epoch(lost) == lost_taken.shard_epoch
    # Pod 2's own shards went, the one moved by hand with them; the lost one was not moved
    # again.
    assert len(shrunk.moved) == 5 + 1
    assert by_hand.shard_epoch < shrunk.shard_map.shard_epoch(owned_by_0[0])
    # Every pod answered, but before the moves: the leaving one goes after it is asked again.
    assert (shrunk.keep, shrunk.again_in) == (3, 0.0)
    asked = asyncio.run(rebalance(_graph(2, shrunk.shard_map), peers, key, record))
    assert (asked.moved, asked.keep, asked.shard_map) == ((), 2, shrunk.shard_map)
    plan = plan_shard_map(
        _graph(2, shrunk.shard_map), shrunk.shard_map, None, asked.move, asked.keep
    )
    assert plan.shard_map is not None and plan.shard_map.members == 2
    # The pods of the smaller map take it; pod 2 goes.
    _write(layout, plan.shard_map)
    _took(layout, peers, key, plan.shard_map)
    pods[2].stop(grace=1)
    _readable(layout, 2, made)


def test_a_move_waits_for_pods_that_do_not_answer(
    layout: PodLayout, pods: list[RunningServer]
) -> None:
    peers, key = LocalPeers(layout), layout.key_file.read_text().strip()
    # The map grew to four pods; the pods still serve the map of three, and pod 3 is not up.
    four = ShardMap(3, (0,) * SHARDS, 4)
    waiting = asyncio.run(rebalance(_graph(4, four), peers, key, Recorder()))
    assert (waiting.rebalancing, waiting.reason, waiting.moved) == (
        True,
        Reason.WAITING_FOR_PODS,
        (),
    )
    assert waiting.move is None  # nothing asked, nothing to record
    assert "pod 3:" in waiting.message and "pod 0:" not in waiting.message
    assert waiting.again_in is not None and waiting.again_in > 0

    # A wrong key is refused by every pod: nothing moves.
    grown = _graph(3, ShardMap(2, (0,) * SHARDS, 3))
    refused = asyncio.run(rebalance(grown, peers, "nope", Recorder()))
    assert refused.reason == Reason.WAITING_FOR_PODS and refused.moved == ()
    assert all(f"pod {p}:" in refused.message for p in range(3))
    assert refused.shard_map == ShardMap(2, (0,) * SHARDS, 3)


def test_a_move_whose_answer_was_lost_after_the_hand_over_is_finished_first(
    layout: PodLayout, pods: list[RunningServer], monkeypatch: pytest.MonkeyPatch
) -> None:
    made = _fill(_stub(layout.address(0)), sessions=12)
    peers, key = LocalPeers(layout), layout.key_file.read_text().strip()
    grown = ShardMap(2, (0,) * SHARDS, 3)
    # The first move's hand-over happens, but dropping the source's copy fails once: the
    # target answers UNAVAILABLE and keeps the move open until asked for that shard again.
    drop = PodMover._drop_at
    failed: list[int] = []

    def drop_once(self: PodMover, source: int, shard: int) -> None:
        if not failed:
            failed.append(shard)
            raise Unavailable("not now")
        drop(self, source, shard)

    monkeypatch.setattr(PodMover, "_drop_at", drop_once)
    first = asyncio.run(rebalance(_graph(3, grown), peers, key, Recorder()))
    assert first.failed == 1 and first.move is not None and first.move.shard == failed[0]
    view = asyncio.run(peers.view(f"g-{first.move.target}.x", key))
    assert view.unfinished == (failed[0], 0)
    # Its retry time come (as if the pause were over), the next reconcile finishes it first.
    ready = dataclasses.replace(first.move, retry_at=0.0)
    record = Recorder()
    second = asyncio.run(rebalance(_graph(3, first.shard_map, ready), peers, key, record))
    assert record.written[0][1].shard == failed[0]
    assert (second.rebalancing, second.failed) == (False, 0)
    assert sorted(second.shard_map.spread()) == [5, 5, 6]
    views = [asyncio.run(peers.view(f"g-{p}.x", key)) for p in range(3)]
    assert all(v.unfinished is None for v in views)
    assert not pods[0].store.holds_shard(failed[0])  # the source's copy went
    _write(layout, second.shard_map)
    _took(layout, peers, key, second.shard_map)
    _readable(layout, 3, made)
