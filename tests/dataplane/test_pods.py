"""A graph served by several pods (`cluster:` settings): each member serves the shards of the
operator's shard map from its own volume, any member answers for the whole graph, members
reach each other only on their peer ports with the peer key (and certificates, with peer
TLS), a volume is never served as another graph's or member's, and a member killed with -9
makes only its own shards unavailable until it is back, losing nothing acknowledged."""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from memorygraph.client import Client
from memorygraph.config import cluster_member, load_config
from memorygraph.errors import ConfigError
from memorygraph.model import parse_id
from memorygraph.server import RunningServer, start_server
from memorygraph.store.shards import Shards
from memorygraph.topology import POD_LEASE_SECONDS
from memorygraph.v1 import graph_pb2 as pb
from memorygraph.v1 import workers_pb2 as wpb
from memorygraph.v1.graph_pb2_grpc import MemoryGraphServiceStub
from memorygraph.v1.workers_pb2_grpc import WorkerPeerStub

from .certs import Authority
from .pods_support import PodLayout, PodProcess, Writers, running_pods, session_nodes, start_pods


def _stub(address: str) -> MemoryGraphServiceStub:
    return MemoryGraphServiceStub(grpc.insecure_channel(address))


def _shard(text: str, shards: int = 64) -> int:
    return Shards(shards).of_id(parse_id(text, "id"))


@pytest.fixture
def layout(tmp_path: Path) -> PodLayout:
    return PodLayout(tmp_path / "graph")


@pytest.fixture
def pods(layout: PodLayout) -> Iterator[list[RunningServer]]:
    with running_pods(layout) as started:
        yield started


def test_two_pods_serve_one_graph_each_from_its_own_volume(
    layout: PodLayout, pods: list[RunningServer]
) -> None:
    stub = _stub(layout.address(0))
    shard_map = _stub(layout.address(1)).GetShardMap(pb.GetShardMapRequest())
    assert list(shard_map.workers) == [layout.address(0), layout.address(1)]
    assert (shard_map.epoch, list(shard_map.owners)) == (1, layout.owners)
    sessions = [stub.CreateSession(pb.CreateSessionRequest(title=f"s{i}")) for i in range(20)]
    prompts = [stub.AddPrompt(pb.AddPromptRequest(session_id=s.id, content="q")) for s in sessions]
    # An edge between sessions of both members: a write with a part for the other one.
    first = layout.owners[_shard(prompts[0].id)]
    across = next(p for p in prompts if layout.owners[_shard(p.id)] != first)
    stub.CreateEdge(
        pb.CreateEdgeRequest(
            source_id=prompts[0].id, target_id=across.id, kind=pb.EDGE_KIND_REFERENCES
        )
    )
    assert {layout.owners[_shard(s.id)] for s in sessions} == {0, 1}
    for member in (0, 1):
        own = _stub(layout.address(member))
        for prompt in prompts:
            assert own.GetNode(pb.GetNodeRequest(node_id=prompt.id)).content == "q"
        page = own.ListSessions(pb.ListSessionsRequest(limit=100))
        assert [s.id for s in page.sessions] == [s.id for s in sessions[::-1]]
        edges = own.GetEdges(pb.GetEdgesRequest(node_id=across.id, direction=pb.DIRECTION_INCOMING))
        assert [e.source_id for e in edges.edges] == [prompts[0].id]
    metrics = stub.GetMetrics(pb.GetMetricsRequest())
    assert (metrics.sessions, metrics.nodes_by_kind["prompt"], metrics.edges) == (20, 20, 21)
    # Each volume holds its own member's sessions only.
    for member, running in enumerate(pods):
        mine = [s for s in sessions if layout.owners[_shard(s.id)] == member]
        assert running.store.counts().sessions == len(mine)


def test_a_client_that_knows_the_map_goes_straight_to_each_member(
    layout: PodLayout, pods: list[RunningServer]
) -> None:
    with Client(layout.address(1)) as mg:
        sessions = [mg.create_session(title=f"s{i}").id for i in range(8)]
        for session_id in sessions:
            turn = mg.record_turn(session_id, "q", "a")
            assert mg.get_node(turn.response.id).content == "a"
    assert sum(running.store.counts().sessions for running in pods) == 8


def test_the_peer_port_takes_only_the_peer_key(tmp_path: Path) -> None:
    layout = PodLayout(tmp_path / "graph")
    keys = tmp_path / "client.keys"
    keys.write_text("client-key\n")
    started = start_pods(layout, auth={"enabled": True, "api_keys_file": str(keys)})
    try:
        client = (("authorization", "Bearer client-key"),)
        peer_key = layout.key_file.read_text().strip()
        peer = (("authorization", f"Bearer {peer_key}"),)
        peer_port = grpc.insecure_channel(layout.peer_address(0))
        read = wpb.PeerReadRequest(family="meta", keys=[b"count/edges"])
        for metadata in ((), client):
            with pytest.raises(grpc.RpcError) as info:
                WorkerPeerStub(peer_port).Read(read, metadata=metadata, timeout=5)
            assert info.value.code() == grpc.StatusCode.UNAUTHENTICATED
            with pytest.raises(grpc.RpcError) as info:
                MemoryGraphServiceStub(peer_port).ListSessions(
                    pb.ListSessionsRequest(), metadata=metadata, timeout=5
                )
            assert info.value.code() == grpc.StatusCode.UNAUTHENTICATED
            with pytest.raises(grpc.RpcError) as info:  # no probing without the key either
                health_pb2_grpc.HealthStub(peer_port).Check(
                    health_pb2.HealthCheckRequest(), metadata=metadata, timeout=5
                )
            assert info.value.code() == grpc.StatusCode.UNAUTHENTICATED
        assert WorkerPeerStub(peer_port).Read(read, metadata=peer, timeout=5) is not None
        # The client port takes client keys only, and forwards with the peer key.
        with pytest.raises(grpc.RpcError) as info:
            _stub(layout.address(0)).ListSessions(pb.ListSessionsRequest(), metadata=peer)
        assert info.value.code() == grpc.StatusCode.UNAUTHENTICATED
        stub = _stub(layout.address(0))
        made = [stub.CreateSession(pb.CreateSessionRequest(), metadata=client).id for _ in range(8)]
        for session_id in made:
            got = _stub(layout.address(1)).GetSession(
                pb.GetSessionRequest(session_id=session_id), metadata=client
            )
            assert got.id == session_id
    finally:
        for running in started:
            running.stop(grace=1)


def test_peers_with_tls_take_only_certificates_of_the_graph_authority(tmp_path: Path) -> None:
    layout = PodLayout(tmp_path / "graph")
    authority = Authority(tmp_path, "graph-ca")
    member = authority.issue("member", server=True, client_too=True)  # one for both ends
    tls = {
        "cert_file": str(member.cert),
        "key_file": str(member.key),
        "ca_file": str(authority.files.cert),
    }
    started = start_pods(layout, cluster={"peer_tls": tls})
    try:
        stub = _stub(layout.address(0))
        made = [stub.CreateSession(pb.CreateSessionRequest()).id for _ in range(8)]
        listed = _stub(layout.address(1)).ListSessions(pb.ListSessionsRequest(limit=100))
        assert {s.id for s in listed.sessions} == set(made)
        peer_key = layout.key_file.read_text().strip()
        # A caller with the key but a certificate of another authority does not get through.
        stranger = Authority(tmp_path, "stranger-ca").issue("stranger", server=False)
        credentials = grpc.ssl_channel_credentials(
            root_certificates=authority.files.cert.read_bytes(),
            private_key=stranger.key.read_bytes(),
            certificate_chain=stranger.cert.read_bytes(),
        )
        channel = grpc.secure_channel(layout.peer_address(0), credentials)
        with pytest.raises(grpc.RpcError) as info:
            WorkerPeerStub(channel).Read(
                wpb.PeerReadRequest(family="meta", keys=[b"count/edges"]),
                metadata=(("authorization", f"Bearer {peer_key}"),),
                timeout=5,
            )
        assert info.value.code() == grpc.StatusCode.UNAVAILABLE
    finally:
        for running in started:
            running.stop(grace=1)


def test_move_shard_between_pods_is_left_to_the_operator(
    layout: PodLayout, pods: list[RunningServer]
) -> None:
    with pytest.raises(grpc.RpcError) as info:
        _stub(layout.address(0)).MoveShard(pb.MoveShardRequest(shard=1, worker=0))
    assert info.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert "placed by the operator" in (info.value.details() or "")


def test_a_newer_map_is_taken_while_serving_and_never_an_older_one(layout: PodLayout) -> None:
    started = start_pods(layout)
    try:
        layout.epoch = 2
        layout.write_map()
        deadline = time.monotonic() + 10
        while _stub(layout.address(0)).GetShardMap(pb.GetShardMapRequest()).epoch != 2:
            assert time.monotonic() < deadline, "the new map was not taken"
            time.sleep(0.1)
    finally:
        for running in started:
            running.stop(grace=1)
    layout.epoch = 1
    layout.write_map()
    with pytest.raises(ConfigError, match="epoch 1 is older than epoch 2"):
        start_server(layout.config(0))


def test_a_map_that_moves_a_shard_or_changes_its_count_is_not_taken(
    layout: PodLayout, pods: list[RunningServer], caplog: pytest.LogCaptureFixture
) -> None:
    """Data moves between pods only with a shard move: a map that only says so is refused,
    and the members keep serving by the one they took (said once, not every poll)."""
    stub = _stub(layout.address(0))
    made = [stub.CreateSession(pb.CreateSessionRequest()).id for _ in range(10)]
    moved = _shard(made[0])
    layout.owners[moved] = 1 - layout.owners[moved]
    layout.epoch = 2
    layout.write_map()
    time.sleep(5)  # two polls and more
    for member in (0, 1):
        shard_map = _stub(layout.address(member)).GetShardMap(pb.GetShardMapRequest())
        assert shard_map.epoch == 1
        listed = _stub(layout.address(member)).ListSessions(pb.ListSessionsRequest(limit=100))
        assert {s.id for s in listed.sessions} == set(made)
    said = [r.getMessage() for r in caplog.records if "not taking the shard map" in r.getMessage()]
    assert len(said) == 2 and f"gives shard {moved} to member" in said[0]  # once per member
    layout.owners[moved] = 1 - layout.owners[moved]
    layout.shards, layout.owners = 32, layout.owners[:32]
    layout.write_map()
    with pytest.raises(ConfigError, match="holds 64 shards and the shard map 32"):
        for running in pods:
            running.stop(grace=0)
        start_server(layout.config(0))


def test_a_graph_of_any_shard_count_is_served(tmp_path: Path) -> None:
    layout = PodLayout(tmp_path / "graph", shards=32)
    started = start_pods(layout)
    try:
        stub = _stub(layout.address(1))
        made = [stub.CreateSession(pb.CreateSessionRequest()).id for _ in range(10)]
        assert {layout.owners[_shard(s, 32)] for s in made} == {0, 1}
        listed = _stub(layout.address(0)).ListSessions(pb.ListSessionsRequest(limit=100))
        assert {s.id for s in listed.sessions} == set(made)
    finally:
        for running in started:
            running.stop(grace=1)


def test_a_volume_served_before_maps_goes_to_a_member_owning_every_shard(
    layout: PodLayout,
) -> None:
    single = layout.settings(0)
    del single["cluster"]
    alone = start_server(load_config(None, single, environ={}))
    made = _stub(layout.address(0)).CreateSession(pb.CreateSessionRequest()).id
    alone.stop(grace=0)
    with pytest.raises(ConfigError, match=r"the map gives shards to members \[1\]"):
        start_server(layout.config(0))
    layout.owners = [0] * layout.shards  # as the operator places an existing one-pod graph
    layout.write_map()
    started = start_pods(layout)
    try:
        got = _stub(layout.address(1)).GetSession(pb.GetSessionRequest(session_id=made))
        assert got.id == made
    finally:
        for running in started:
            running.stop(grace=1)
    # From now on the volume is member 0's, and never served as a whole graph again.
    with pytest.raises(ConfigError, match=r"member 0's of graph .* start it with the graph's"):
        start_server(load_config(None, single, environ={}))


def test_a_member_refused_by_another_tells_its_caller_to_try_again(tmp_path: Path) -> None:
    """A peer key that differs between members (a rotation under way) is no client's fault."""
    layout = PodLayout(tmp_path / "graph")
    other_key = tmp_path / "other.key"
    other_key.write_text("not-the-graph-key\n")
    started = [
        start_server(layout.config(0, cluster={"peer_key_file": str(other_key)})),
        start_server(layout.config(1)),
    ]
    try:
        stub = _stub(layout.address(0))
        codes = set()
        for _ in range(20):  # new sessions land on both members' shards
            try:
                stub.CreateSession(pb.CreateSessionRequest())
            except grpc.RpcError as error:
                codes.add(error.code())
                assert "refused this one; try again" in (error.details() or "")
        assert codes == {grpc.StatusCode.UNAVAILABLE}
    finally:
        for running in started:
            running.stop(grace=1)


def _wait_for_members(address: str, count: int) -> pb.ShardMap:
    deadline = time.monotonic() + 10
    while len((shard_map := _stub(address).GetShardMap(pb.GetShardMapRequest())).workers) != count:
        assert time.monotonic() < deadline, f"{address} did not take the map of {count} members"
        time.sleep(0.1)
    return shard_map


def test_members_join_and_leave_a_running_graph_with_the_map(tmp_path: Path) -> None:
    """A pod added to the map (owning nothing yet) is reached by the others without a
    restart, answers for the whole graph, and is no longer asked once the map drops it."""
    layout = PodLayout(tmp_path / "graph", count=3)
    layout.count, layout.owners = 2, [s % 2 for s in range(layout.shards)]
    layout.write_map()
    started = [start_server(layout.config(m)) for m in (0, 1)]
    try:
        made = [
            _stub(layout.address(0)).CreateSession(pb.CreateSessionRequest()).id for _ in range(8)
        ]
        layout.count, layout.epoch = 3, 2
        layout.write_map()
        for member in (0, 1):
            shard_map = _wait_for_members(layout.address(member), 3)
            assert list(shard_map.workers) == [layout.address(m) for m in range(3)]
        # Named before its pod serves: it owns nothing, so listings do not wait for it.
        listed = _stub(layout.address(0)).ListSessions(pb.ListSessionsRequest(limit=100))
        assert {s.id for s in listed.sessions} == set(made)
        started.append(start_server(layout.config(2)))
        newcomer = _stub(layout.address(2))
        listed = newcomer.ListSessions(pb.ListSessionsRequest(limit=100))
        assert {s.id for s in listed.sessions} == set(made)
        made.append(newcomer.CreateSession(pb.CreateSessionRequest()).id)
        assert newcomer.GetMetrics(pb.GetMetricsRequest()).sessions == 9
        # It leaves: the others stop asking it for their listings.
        layout.count, layout.epoch = 2, 3
        layout.write_map()
        _wait_for_members(layout.address(0), 2)
        started.pop().stop(grace=0)
        listed = _stub(layout.address(0)).ListSessions(pb.ListSessionsRequest(limit=100))
        assert {s.id for s in listed.sessions} == set(made)
    finally:
        for running in started:
            running.stop(grace=1)


def test_a_volume_is_served_only_as_its_own_graph_and_member(layout: PodLayout) -> None:
    start_server(layout.config(0)).stop(grace=0)
    layout.graph = "another-graph"
    layout.write_map()
    with pytest.raises(ConfigError, match=r"holds graph .* not another-graph"):
        start_server(layout.config(0))
    layout.graph = PodLayout.graph
    layout.write_map()
    one = layout.config(1)
    wrong = one.model_copy(update={"data_dir": layout.data_dir(0)})
    with pytest.raises(ConfigError, match="member 0's of the graph, not member 1's"):
        start_server(wrong)
    started = start_server(layout.config(0))  # its own volume, as before
    started.stop(grace=0)


def test_a_member_the_map_does_not_name_waits_for_the_operator(layout: PodLayout) -> None:
    settings = layout.settings(0)
    settings["cluster"]["member"] = 2
    with pytest.raises(ConfigError, match="names 2 members and not this one"):
        start_server(load_config(None, settings, environ={}))


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("{", "is not one"),
        ("[]", "must be a JSON object"),
        ('{"graph": "g"}', "has no epoch, members, owners, shards"),
        (
            '{"graph": "g", "shards": 3, "epoch": 1, "owners": [0,0,0], '
            '"members": [{"address": "a:1", "peer": "a:2"}]}',
            "power of two",
        ),
        (
            '{"graph": "g", "shards": 2, "epoch": 1, "owners": [0, 1], '
            '"members": [{"address": "a:1", "peer": "a:2"}]}',
            "member index below 1",
        ),
        (
            '{"graph": "g", "shards": 2, "epoch": 1, "owners": [0, 0], '
            '"members": [{"address": "a", "peer": "a:2"}]}',
            r"members\[0\].address must be host:port",
        ),
    ],
)
def test_a_shard_map_that_is_not_one_is_refused_saying_why(
    layout: PodLayout, text: str, problem: str
) -> None:
    layout.map_file.write_text(text)
    with pytest.raises(ConfigError, match=problem):
        start_server(layout.config(0))
    assert not layout.data_dir(0).exists()  # nothing opened


@pytest.mark.parametrize(
    ("change", "problem"),
    [
        ({"cluster": {"peer_key_file": None}}, "cluster.peer_key_file is required"),
        ({"workers": 2}, "runs one worker"),
        ({"cluster": {"peer_port": 0}}, "peer_port"),
    ],
)
def test_cluster_settings_a_member_cannot_run_with_are_refused(
    layout: PodLayout, change: dict[str, object], problem: str
) -> None:
    settings = layout.settings(0, **change)
    with pytest.raises(ConfigError, match=problem):
        load_config(None, settings, environ={})


@pytest.mark.parametrize(("pod", "member"), [("mg-0", 0), ("chat-memory-12", 12), ("graph-a-3", 3)])
def test_the_member_is_the_pod_name_ordinal(pod: str, member: int, layout: PodLayout) -> None:
    settings = layout.settings(0)
    del settings["cluster"]["member"]
    config = load_config(None, settings, environ={})
    assert cluster_member(config, {"MEMORYGRAPH_POD_NAME": pod}) == member
    with pytest.raises(ConfigError, match="does not end in its ordinal"):
        cluster_member(config, {"MEMORYGRAPH_POD_NAME": "memorygraph"})


@pytest.mark.slow
def test_a_member_killed_amid_writes_pauses_only_its_shards_and_loses_nothing(
    layout: PodLayout,
) -> None:
    members = [PodProcess(layout, m).start() for m in range(layout.count)]
    try:
        stub = _stub(layout.address(0))
        sessions = [stub.CreateSession(pb.CreateSessionRequest()).id for _ in range(8)]
        on_1 = {s for s in sessions if layout.owners[_shard(s)] == 1}
        assert on_1 and len(on_1) < len(sessions)
        writers = Writers(layout.address(0), sessions)
        time.sleep(1.0)
        members[1].kill()
        writers.down.set()
        before = writers.counts()
        time.sleep(2.0)
        writers.down.clear()
        after = writers.counts()
        # Member 0's sessions kept taking writes; member 1's answered UNAVAILABLE meanwhile.
        assert {s for s in sessions if after[s] > before[s]} == set(sessions) - on_1
        pausing = {grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED}
        assert all(writers.failures[s] and writers.failures[s] <= pausing for s in on_1)
        members[1].start()
        time.sleep(1.0)
        writers.stop()
        for member in (0, 1):
            own = _stub(layout.address(member))
            for session_id in sessions:
                assert session_nodes(own, session_id) >= set(writers.acknowledged[session_id])
        assert min(writers.counts().values()) > 10
    finally:
        for member in members:
            if member.proc is not None:
                member.stop()
    assert f"as member 1 of 2 of graph {layout.graph}" in members[1].output()


@pytest.mark.slow
def test_a_member_killed_amid_writes_reaching_another_holds_it_back_at_most_a_lease(
    layout: PodLayout,
) -> None:
    """Writes of member 1 that reach member 0 (edges between their sessions) take member 0's
    writers' lock; killed holding it, member 1 holds member 0's own writes back only until the
    lock's lease runs out."""
    members = [PodProcess(layout, m).start() for m in range(layout.count)]
    try:
        stub = _stub(layout.address(0))
        made = [stub.CreateSession(pb.CreateSessionRequest()).id for _ in range(12)]
        here = next(s for s in made if layout.owners[_shard(s)] == 0)
        there = next(s for s in made if layout.owners[_shard(s)] == 1)
        target = stub.AddPrompt(pb.AddPromptRequest(session_id=here, content="a")).id
        source = stub.AddPrompt(pb.AddPromptRequest(session_id=there, content="b")).id
        stopping = threading.Event()

        def reach_member_0() -> None:
            own = _stub(layout.address(1))
            edge = pb.CreateEdgeRequest(
                source_id=source, target_id=target, kind=pb.EDGE_KIND_REFERENCES
            )
            while not stopping.is_set():
                with contextlib.suppress(grpc.RpcError):
                    own.CreateEdge(edge, timeout=5)

        threads = [threading.Thread(target=reach_member_0) for _ in range(4)]
        for thread in threads:
            thread.start()
        time.sleep(1.5)
        members[1].kill()
        stopping.set()
        for thread in threads:
            thread.join(10)
        slowest = 0.0
        for _ in range(20):
            started = time.monotonic()
            stub.AddPrompt(pb.AddPromptRequest(session_id=here, content="x"), timeout=30)
            slowest = max(slowest, time.monotonic() - started)
        assert slowest < POD_LEASE_SECONDS + 1.0
    finally:
        for member in members:
            if member.proc is not None:
                member.stop()


def test_a_pod_stopping_delivers_the_parts_of_writes_it_still_holds(
    layout: PodLayout, pods: list[RunningServer], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A pod leaving its graph (a scale-in) takes no part of an acknowledged write with it:
    what its outbox holds for the others is delivered while it stops."""
    stub = _stub(layout.address(0))
    prompts = []
    for i in range(12):
        session = stub.CreateSession(pb.CreateSessionRequest(title=f"s{i}")).id
        prompts.append(stub.AddPrompt(pb.AddPromptRequest(session_id=session, content="q")))
    source = next(p for p in prompts if layout.owners[_shard(p.id)] == 0)
    target = next(p for p in prompts if layout.owners[_shard(p.id)] == 1)
    # Pod 1 takes its lock, then fails to apply the part: the write is acknowledged, and its
    # part for pod 1 stays in pod 0's outbox until pod 1 applies parts again.
    refusing = threading.Event()
    refusing.set()
    endpoint = pods[1].peer.endpoint  # type: ignore[union-attr]
    apply = endpoint.apply

    def flaky(*args: object, **kwargs: object) -> object:
        if refusing.is_set():
            raise ConnectionError("not now")
        return apply(*args, **kwargs)

    monkeypatch.setattr(endpoint, "apply", flaky)
    stub.CreateEdge(
        pb.CreateEdgeRequest(source_id=source.id, target_id=target.id, kind=pb.EDGE_KIND_REFERENCES)
    )
    assert pods[0].store.undelivered() > 0
    stopping = threading.Thread(target=pods[0].stop, kwargs={"grace": 5})
    stopping.start()
    time.sleep(0.5)  # pod 0 stops; its periodic deliveries are over
    refusing.clear()
    stopping.join(30)
    assert not stopping.is_alive()
    assert pods[0].store.undelivered() == 0  # delivered to pod 1 before the store closed
