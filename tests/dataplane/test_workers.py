"""`memorygraph serve --workers 2` for real: a supervisor and two worker processes on one data
directory, one shared port, each worker on its own port too; a worker killed with -9 is started
again and loses no acknowledged write; a directory refuses another number of workers."""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path

import grpc
import pytest
from memorygraph.client import Client
from memorygraph.config import usable_cpus
from memorygraph.errors import RequestError
from memorygraph.model import parse_id
from memorygraph.store import keys
from memorygraph.store.shards import Shards
from memorygraph.v1 import graph_pb2 as pb
from memorygraph.v1 import workers_pb2 as wpb
from memorygraph.v1.graph_pb2_grpc import MemoryGraphServiceStub
from memorygraph.v1.workers_pb2_grpc import WorkerPeerStub

from .certs import Authority
from .conftest import (
    REPO,
    ServerProcess,
    free_port,
    free_port_run,
    serve_command,
    start_workers,
    threads_cpus,
    wait_serving,
)
from .rpc_support import connect_routes

pytestmark = pytest.mark.slow


class Workers(ServerProcess):
    """`serve --workers 2` on a port whose next two are free (the workers' own)."""

    def __init__(self, data_dir: Path, *extra: str) -> None:
        super().__init__(data_dir, "--workers", "2", *extra)
        self.port = free_port_run(3)
        self.metrics_port = free_port_run(3)  # worker i serves metrics on the port + 1 + i

    def start(self) -> Workers:
        super().start()
        for worker in (0, 1):
            _wait_answering(self.own(worker))
        return self

    def worker_pids(self) -> list[int]:
        assert self.proc is not None
        found = subprocess.run(
            ["pgrep", "-P", str(self.proc.pid)], capture_output=True, text=True, check=False
        )
        return sorted(int(pid) for pid in found.stdout.split())

    def own(self, worker: int) -> str:
        return f"127.0.0.1:{self.port + 1 + worker}"


def _stub(address: str) -> MemoryGraphServiceStub:
    return MemoryGraphServiceStub(grpc.insecure_channel(address))


def test_two_workers_serve_one_graph_on_one_port_and_each_on_its_own(tmp_path: Path) -> None:
    server = Workers(tmp_path / "data").start()
    try:
        stub = _stub(server.address)
        shard_map = stub.GetShardMap(pb.GetShardMapRequest())
        assert (shard_map.shards, list(shard_map.workers)) == (64, [server.own(0), server.own(1)])
        assert list(shard_map.owners) == [s % 2 for s in range(64)]
        sessions = [stub.CreateSession(pb.CreateSessionRequest(title=f"s{i}")) for i in range(20)]
        prompts = [
            stub.AddPrompt(pb.AddPromptRequest(session_id=s.id, content="q")) for s in sessions
        ]
        stub.CreateEdge(
            pb.CreateEdgeRequest(
                source_id=prompts[0].id, target_id=prompts[1].id, kind=pb.EDGE_KIND_REFERENCES
            )
        )
        # Both workers hold sessions, and each answers for all of them.
        owners = {shard_map.owners[_shard(s.id)] for s in sessions}
        assert owners == {0, 1}
        for worker in (0, 1):
            own = _stub(server.own(worker))
            for prompt in prompts:
                assert own.GetNode(pb.GetNodeRequest(node_id=prompt.id)).content == "q"
            page = own.ListSessions(pb.ListSessionsRequest(limit=100))
            assert [s.id for s in page.sessions] == [s.id for s in sessions[::-1]]
        metrics = stub.GetMetrics(pb.GetMetricsRequest())
        assert (metrics.sessions, metrics.nodes_by_kind["prompt"]) == (20, 20)
        assert len(server.worker_pids()) == 2
    finally:
        server.stop()
    assert "stopped 2 workers" in server.output()


def _shard(text: str) -> int:
    return Shards(64).of_id(parse_id(text, "id"))


def _kill_a_worker_amid_writes(
    server: Workers, sessions: list[str], acknowledged: list[str]
) -> None:
    """kill -9 worker 1 while every session takes prompts through the shared port; every
    prompt acknowledged goes in `acknowledged`. Returns once the worker runs again."""

    def kill() -> int:
        pid = server.worker_pids()[1]
        subprocess.run(["kill", "-9", str(pid)], check=True)
        time.sleep(1.0)
        return pid

    _amid_writes(server, sessions, acknowledged, kill)


def _amid_writes(
    server: Workers, sessions: list[str], acknowledged: list[str], act: Callable[[], int]
) -> None:
    """`act()`, which kills a worker and returns its pid, while every session takes prompts,
    half through plain stubs on the shared port and half through clients that route; every
    prompt acknowledged goes in `acknowledged`. Returns once the worker runs again."""
    stop = threading.Event()
    lock = threading.Lock()

    def write(session_id: str) -> None:
        own = _stub(server.address)
        while not stop.is_set():
            try:
                node = own.AddPrompt(
                    pb.AddPromptRequest(session_id=session_id, content="x"), timeout=5
                )
            except grpc.RpcError:
                time.sleep(0.05)
                continue
            with lock:
                acknowledged.append(node.id)

    def write_routed(session_id: str) -> None:
        """The same through a client that sends each call straight to its worker."""
        with Client(server.address, timeout=5) as mg:
            while not stop.is_set():
                try:
                    node = mg.add_prompt(session_id, "x")
                except RequestError:
                    time.sleep(0.05)
                    continue
                with lock:
                    acknowledged.append(node.id)

    threads = [
        threading.Thread(target=write_routed if i % 2 else write, args=(s,))
        for i, s in enumerate(sessions)
    ]
    for thread in threads:
        thread.start()
    time.sleep(1.0)
    killed = act()
    stop.set()
    for thread in threads:
        thread.join(10)
    deadline = time.monotonic() + 30
    while len(after := server.worker_pids()) < 2 or killed in after:
        assert time.monotonic() < deadline, "the worker was not restarted"
        time.sleep(0.1)


def _wait_answering(address: str) -> None:
    stub = _stub(address)
    deadline = time.monotonic() + 30
    while True:
        try:
            stub.Health(pb.HealthRequest(), timeout=1)
            return
        except grpc.RpcError:
            assert time.monotonic() < deadline, f"{address} does not answer"
            time.sleep(0.1)


def test_a_worker_killed_amid_writes_is_restarted_and_loses_no_acknowledged_write(
    tmp_path: Path,
) -> None:
    server = Workers(tmp_path / "data").start()
    try:
        stub = _stub(server.address)
        sessions = [stub.CreateSession(pb.CreateSessionRequest()).id for _ in range(8)]
        acknowledged: list[str] = []
        for _ in range(3):  # rounds
            _kill_a_worker_amid_writes(server, sessions, acknowledged)
        for worker in (0, 1):
            _wait_answering(server.own(worker))
        assert len(acknowledged) > 50
        assert _missing(stub, acknowledged) == []
        assert server.output().count("starting it again") == 3
    finally:
        server.stop()


def test_a_directory_refuses_another_number_of_workers(tmp_path: Path) -> None:
    data = tmp_path / "data"
    Workers(data).start().stop()
    refused = subprocess.run(
        serve_command(data, free_port_run(4), 0, "--workers", "3"),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert refused.returncode == 2
    assert "is served by 2 workers and cannot be started with 3" in refused.stderr
    single = tmp_path / "single"
    ServerProcess(single).start().stop()
    refused = subprocess.run(
        serve_command(single, free_port_run(3), 0, "--workers", "2"),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert refused.returncode == 2
    assert "holds the store of a single process" in refused.stderr


def _serve_by_default(data: Path, cpus: set[int]) -> tuple[int, str]:
    """`serve` on `data` without --workers, allowed to run on `cpus`: how many workers serve
    it (GetShardMap), and what is left in the directory."""
    port = free_port_run(len(os.sched_getaffinity(0)) + 1)
    command = [sys.executable, "-m", "memorygraph", "serve", "--host", "127.0.0.1"]
    command += ["--data-dir", str(data), "--port", str(port), "--metrics-port", "0"]
    proc = subprocess.Popen(
        command,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        preexec_fn=lambda: os.sched_setaffinity(0, cpus),
    )
    try:
        wait_serving(f"127.0.0.1:{port}", proc=proc)
        workers = _stub(f"127.0.0.1:{port}").GetShardMap(pb.GetShardMapRequest()).workers
    finally:
        proc.terminate()
        assert proc.wait(timeout=60) == 0
    return max(len(workers), 1), ("workers.json" if (data / "workers.json").exists() else "")


@pytest.mark.parametrize(
    ("cpu_max", "expected"),
    [
        ("max 100000\n", 8),
        ("200000 100000\n", 2),
        ("150000 100000\n", 2),
        ("5000 100000", 1),
        (None, 8),
        ("garbage", 8),
    ],
)
def test_usable_cpus_follow_the_container_cpu_limit(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, cpu_max: str | None, expected: int
) -> None:
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: set(range(8)))
    limit = tmp_path / "cpu.max"
    if cpu_max is not None:
        limit.write_text(cpu_max)
    assert usable_cpus(limit) == expected
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: set(range(100)))
    assert usable_cpus(tmp_path / "none") == 64  # the most workers a directory may have


def test_serve_runs_a_worker_per_usable_cpu_for_a_new_directory_and_keeps_its_number(
    tmp_path: Path,
) -> None:
    cpus = os.sched_getaffinity(0)
    if len(cpus) < 2:
        pytest.skip("needs two CPUs")
    both = set(sorted(cpus)[:2])
    one = {min(cpus)}
    assert _serve_by_default(tmp_path / "two", both) == (2, "workers.json")
    assert _serve_by_default(tmp_path / "one", one) == (1, "")
    # A directory keeps the number it was made with, whatever the CPUs are now.
    assert _serve_by_default(tmp_path / "two", one) == (2, "workers.json")
    assert _serve_by_default(tmp_path / "one", both) == (1, "")


def test_pinned_workers_each_keep_every_thread_on_a_cpu_of_their_own(tmp_path: Path) -> None:
    """`--pin-cpus`: worker i and every thread it runs (gRPC's, the pools', the store's
    requests) stay on the i-th CPU the data plane may use; RocksDB's flushes and compactions,
    and the supervisor, which computes nothing, do not."""
    cpus = frozenset(os.sched_getaffinity(0))
    if len(cpus) < 2:
        pytest.skip("needs two CPUs")
    server = Workers(tmp_path / "data", "--pin-cpus").start()
    try:
        assert server.proc is not None
        first, second = sorted(cpus)[:2]
        workers = [threads_cpus(pid) for pid in server.worker_pids()]
        # Each worker's threads all on one CPU, the two workers' CPUs the first two.
        assert sorted(tuple(sorted(c)) for w in workers for c in w["python"]) == [
            (first,),
            (second,),
        ]
        assert all(w["rocksdb"] == {cpus} for w in workers)
        assert threads_cpus(server.proc.pid)["python"] == {cpus}
        stub = _stub(server.address)  # and the graph is served as ever
        session = stub.CreateSession(pb.CreateSessionRequest(title="pinned"))
        assert stub.AddPrompt(pb.AddPromptRequest(session_id=session.id, content="q")).id
        assert "keeping this process on CPU" in server.output()
    finally:
        server.stop()


def test_two_workers_serve_tls_on_every_port(tmp_path: Path) -> None:
    ca = Authority(tmp_path, "ca")
    issued = ca.issue("server", server=True)
    server = Workers(
        tmp_path / "data", "--config", str(_tls_config(tmp_path, issued.cert, issued.key))
    )
    start_ready(server)
    try:
        credentials = grpc.ssl_channel_credentials(ca.files.cert.read_bytes())
        for address in (server.address, server.own(0), server.own(1)):
            stub = MemoryGraphServiceStub(grpc.secure_channel(address, credentials))
            session = stub.CreateSession(pb.CreateSessionRequest())
            prompt = stub.AddPrompt(pb.AddPromptRequest(session_id=session.id, content="q"))
            assert stub.GetNode(pb.GetNodeRequest(node_id=prompt.id)).id == prompt.id
        plain = _stub(server.address)
        with pytest.raises(grpc.RpcError):
            plain.Health(pb.HealthRequest(), timeout=2)
        # A client that routes reaches each worker's own port over TLS too: no call forwarded.
        with Client(server.address, root_certificates=ca.files.cert) as mg:
            connect_routes(mg)
            forwarded = _forwarded(server, "AddPrompt")
            for _ in range(10):
                session = mg.create_session()
                prompt = mg.add_prompt(session.id, "q")
                assert mg.get_node(prompt.id).session_id == session.id
            assert _forwarded(server, "AddPrompt") == forwarded
    finally:
        server.stop()


def _forwarded(server: Workers, method: str) -> float:
    """Calls of `method` the workers passed on to another, from their metrics endpoints."""
    total = 0.0
    for worker in (0, 1):
        url = f"http://127.0.0.1:{server.metrics_port + 1 + worker}/metrics"
        with urllib.request.urlopen(url, timeout=5) as answer:
            text = answer.read().decode()
        for line in text.splitlines():
            if line.startswith(f'memorygraph_forwarded_calls_total{{method="{method}"}}'):
                total += float(line.split()[-1])
    return total


def _tls_config(tmp_path: Path, cert: Path, key: Path) -> Path:
    config = tmp_path / "tls.yaml"
    config.write_text(f"tls:\n  cert_file: {cert}\n  key_file: {key}\n")
    return config


def start_ready(server: Workers) -> None:
    """Start `server` and wait until its supervisor reports every worker ready (its health
    check needs TLS here, so the supervisor's readiness probe is asked instead)."""
    env = {**os.environ, "PYTHONPATH": str(REPO / "dataplane")}
    with server.log.open("ab") as log:
        server.proc = subprocess.Popen(
            serve_command(server.data_dir, server.port, server.metrics_port, *server.extra),
            stdout=log,
            stderr=subprocess.STDOUT,
            env=env,
        )
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        assert server.proc.poll() is None, server.output()
        try:
            with urllib.request.urlopen(
                f"http://127.0.0.1:{server.metrics_port}/readyz", timeout=1
            ) as answer:
                if answer.status == 200:
                    return
        except OSError:
            pass
        time.sleep(0.1)
    raise TimeoutError("the workers did not become ready")


def test_events_over_every_worker_resume_with_no_duplicate_and_no_gap(tmp_path: Path) -> None:
    """Writers on sessions of both workers all along; a reader of every event stops three
    times and resumes from one past the last sequence it got. It gets each worker's log
    exactly, merged in sequence order."""
    servers = start_workers(tmp_path / "data", 2)
    try:
        stub = _stub(f"127.0.0.1:{servers[0].port}")
        by_worker: dict[int, list[str]] = {0: [], 1: []}
        while min(len(made) for made in by_worker.values()) < 3:  # new sessions' shards are random
            session_id = stub.CreateSession(pb.CreateSessionRequest()).id
            by_worker[_shard(session_id) % 2].append(session_id)
        sessions = by_worker[0][:3] + by_worker[1][:3]
        stop = threading.Event()

        def write(session_id: str) -> None:
            writer = _stub(f"127.0.0.1:{servers[1].port}")
            while not stop.is_set():
                writer.AddPrompt(pb.AddPromptRequest(session_id=session_id, content="x"))

        threads = [threading.Thread(target=write, args=(s,)) for s in sessions]
        for thread in threads:
            thread.start()
        received: list[int] = []
        try:
            for _ in range(4):
                start = received[-1] + 1 if received else 1
                stream = stub.StreamEvents(pb.StreamEventsRequest(from_sequence=start))
                for event in stream:
                    received.append(event.sequence)
                    if len(received) % 150 == 0:
                        break
                stream.cancel()
        finally:
            stop.set()
            for thread in threads:
                thread.join(10)
        assert received == sorted(set(received))
        logged = sorted(e.sequence for s in servers for e in s.store.events.read(0, 2**63, 100_000))
        assert received == logged[: len(received)]
        owners = {keys.sequence_shard(seq) % 2 for seq in received}
        assert owners == {0, 1}  # both workers' events, interleaved in one order
    finally:
        for server in servers:
            server.stop(grace=1)


def test_a_restore_through_the_other_worker_brings_the_history_back_to_the_owner(
    tmp_path: Path,
) -> None:
    """The session's history goes back into the log it came from, its worker's, whichever
    address the export is sent to."""
    servers = start_workers(tmp_path / "data", 2)
    try:
        with Client(f"127.0.0.1:{servers[0].port}") as mg:
            session = mg.create_session(title="kept")
            for i in range(3):
                mg.add_prompt(session.id, f"q{i}")
            mg.close_session(session.id)
            data, summary = mg.export_session(session.id)
            mg.archive_session(session.id, summary.content_sha256)
        shard_map = _stub(f"127.0.0.1:{servers[0].port}").GetShardMap(pb.GetShardMapRequest())
        owner = shard_map.owners[_shard(session.id)]
        other = servers[0].port + 1 + (1 - owner)
        with Client(f"127.0.0.1:{other}") as elsewhere:
            restored = elsewhere.restore_session(data)
            assert (restored.nodes, restored.events) == (summary.nodes + 1, summary.events)
            assert summary.events > 0
            assert elsewhere.export_session(session.id)[0] == data
    finally:
        for server in servers:
            server.stop(grace=1)


def test_what_workers_ask_each_other_is_not_served_to_clients(tmp_path: Path) -> None:
    """The workers' own service answers only on their internal addresses, and a client that
    marks its calls as coming from a worker is answered like any client."""
    servers = start_workers(tmp_path / "data", 2)
    try:
        for port in (servers[0].port, servers[0].port + 1, servers[0].port + 2):
            channel = grpc.insecure_channel(f"127.0.0.1:{port}")
            with pytest.raises(grpc.RpcError) as info:
                WorkerPeerStub(channel).Read(
                    wpb.PeerReadRequest(family="meta", keys=[b"count/edges"]), timeout=5
                )
            assert info.value.code() == grpc.StatusCode.UNIMPLEMENTED
            with pytest.raises(grpc.RpcError) as info:
                WorkerPeerStub(channel).Lock(wpb.PeerLockRequest(origin=0), timeout=5)
            assert info.value.code() == grpc.StatusCode.UNIMPLEMENTED
        stub = _stub(f"127.0.0.1:{servers[0].port}")
        made = {stub.CreateSession(pb.CreateSessionRequest()).id for _ in range(12)}
        forged = (("x-memorygraph-worker", "1"),)
        listed = stub.ListSessions(pb.ListSessionsRequest(limit=100), metadata=forged)
        assert {s.id for s in listed.sessions} == made
        events = stub.StreamEvents(pb.StreamEventsRequest(from_sequence=1), metadata=forged)
        first = [next(events) for _ in range(12)]
        events.cancel()
        assert all(e.type == pb.EVENT_TYPE_SESSION_CREATED for e in first)  # no watermarks
    finally:
        for server in servers:
            server.stop(grace=1)


_KILLED_MOVE = """
import os, signal, sys
from pathlib import Path
from memorygraph.cli.shards import _open_engine
from memorygraph.store.placement import move_offline

data, shard, to, kill_at = Path(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
said = []

def say(line):
    said.append(line)
    if len(said) > kill_at:
        os.kill(os.getpid(), signal.SIGKILL)

move_offline(data, shard, to, _open_engine, say=say)
"""


def _shards_move(data_dir: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(REPO / "dataplane")}
    command = [sys.executable, "-m", "memorygraph", "shards", "move", *args]
    return subprocess.run(
        [*command, "--data-dir", str(data_dir)], capture_output=True, text=True, env=env
    )


def test_shards_moved_with_the_data_plane_stopped_and_killed_at_every_step_move_once(
    tmp_path: Path,
) -> None:
    data = tmp_path / "data"
    server = Workers(data).start()
    try:
        stub = _stub(server.address)
        prompts: dict[str, str] = {}  # prompt id -> session id
        while len({_shard(s) for s in prompts.values() if _shard(s) % 2}) < 5:
            session = stub.CreateSession(pb.CreateSessionRequest()).id
            for _ in range(2):
                prompt = stub.AddPrompt(pb.AddPromptRequest(session_id=session, content="q"))
                prompts[prompt.id] = session
        before = stub.GetMetrics(pb.GetMetricsRequest())
    finally:
        server.stop()
    moved = sorted({_shard(s) for s in prompts.values() if _shard(s) % 2})[:5]
    env = {**os.environ, "PYTHONPATH": str(REPO / "dataplane")}
    for kill_at, shard in enumerate(moved):  # kill -9 after step 1, 2, ... 5 of a move (of 5)
        killed = subprocess.run(
            [sys.executable, "-c", _KILLED_MOVE, str(data), str(shard), "0", str(kill_at)],
            env=env,
            capture_output=True,
            text=True,
        )
        assert killed.returncode == -9, killed.stderr
        if kill_at == 0:
            refused = subprocess.run(
                serve_command(data, free_port(), free_port(), "--workers", "2"),
                env=env,
                capture_output=True,
                text=True,
                timeout=60,
            )
            assert refused.returncode == 2
            assert f"the move of shard {shard} to worker 0" in refused.stderr
            wrong = _shards_move(data, str(moved[-1]), "--to", "0")
            assert wrong.returncode == 2 and "was cut short" in wrong.stderr
        again = _shards_move(data, str(shard), "--to", "0")
        assert again.returncode == 0, again.stderr
        done = "is on worker 0 already" if kill_at == 4 else "moved shard"  # 4: killed once done
        assert done in again.stdout
    assert _shards_move(data, "99", "--to", "0").returncode == 2
    server = Workers(data).start()
    try:
        stub = _stub(server.address)
        shard_map = stub.GetShardMap(pb.GetShardMapRequest())
        assert shard_map.epoch == 1 + len(moved)
        assert [shard_map.owners[s] for s in moved] == [0] * len(moved)
        after = stub.GetMetrics(pb.GetMetricsRequest())
        assert (after.sessions, after.nodes_by_kind["prompt"], after.edges) == (
            before.sessions,
            before.nodes_by_kind["prompt"],
            before.edges,
        )
        for prompt_id, session in prompts.items():
            node = stub.GetNode(pb.GetNodeRequest(node_id=prompt_id), timeout=5)
            assert node.session_id == session
        listed = [s.id for s in stub.ListSessions(pb.ListSessionsRequest(limit=1000)).sessions]
        assert sorted(listed) == sorted(set(prompts.values()))
        session = next(s for s in prompts.values() if _shard(s) == moved[0])
        stub.AddPrompt(pb.AddPromptRequest(session_id=session, content="after the move"))
        events = stub.SubscribeToSession(
            pb.SubscribeToSessionRequest(session_id=session, from_sequence=1)
        )
        sequences = [next(events).sequence for _ in range(7)]  # created, 2 turns, the new one
        events.cancel()
        assert sequences == sorted(set(sequences))
    finally:
        server.stop()


def _missing(stub: MemoryGraphServiceStub, node_ids: list[str]) -> list[tuple[str, object]]:
    """Those of `node_ids` the graph does not answer for, with the status it gave."""
    missing = []
    for node_id in node_ids:
        try:
            stub.GetNode(pb.GetNodeRequest(node_id=node_id), timeout=5)
        except grpc.RpcError as error:
            missing.append((node_id, error.code()))
    return missing


def _move_until_done(stub: MemoryGraphServiceStub, shard: int, to: int) -> pb.MoveShardResponse:
    """MoveShard, again while it fails (a worker starting again, or the move's own retry)."""
    deadline = time.monotonic() + 90
    while True:
        try:
            return stub.MoveShard(pb.MoveShardRequest(shard=shard, worker=to), timeout=30)
        except grpc.RpcError as error:
            assert time.monotonic() < deadline, f"the move never finished: {error.details()}"
            time.sleep(0.5)


def test_a_move_whose_workers_are_killed_midway_finishes_and_loses_nothing(
    tmp_path: Path,
) -> None:
    server = Workers(tmp_path / "data").start()
    try:
        stub = _stub(server.address)
        sessions = [stub.CreateSession(pb.CreateSessionRequest()).id for _ in range(8)]
        acknowledged: list[str] = []
        shards = sorted({_shard(s) for s in sessions})
        rounds = [("target", 0.05), ("source", 0.15), ("target", 0.4), ("source", 0.02)]
        for (killed, delay), shard in zip(rounds, shards, strict=False):
            owner = stub.GetShardMap(pb.GetShardMapRequest()).owners[shard]
            to = 1 - owner
            victim = to if killed == "target" else owner

            def move(shard: int = shard, to: int = to) -> None:
                with contextlib.suppress(grpc.RpcError):  # cut short by the kill: finished below
                    stub.MoveShard(pb.MoveShardRequest(shard=shard, worker=to), timeout=30)

            def kill(victim: int = victim, delay: float = delay) -> int:
                mover = threading.Thread(target=move)
                mover.start()
                time.sleep(delay)
                pid = server.worker_pids()[victim]
                subprocess.run(["kill", "-9", str(pid)], check=True)
                mover.join(60)
                return pid

            _amid_writes(server, sessions, acknowledged, kill)
            for worker in (0, 1):
                _wait_answering(server.own(worker))
            done = _move_until_done(stub, shard, to)
            assert stub.GetShardMap(pb.GetShardMapRequest()).owners[shard] == to
            assert done.epoch == stub.GetShardMap(pb.GetShardMapRequest()).epoch
        assert len(acknowledged) > 50
        assert _missing(stub, acknowledged) == []
        # Counted once each: the prompts stored (acknowledged ones, and those a kill cut off
        # before their answer) are what the counts say.
        stored = [
            node.id
            for session in sessions
            for batch in stub.StreamQuery(
                pb.StreamQueryRequest(
                    filter=pb.QueryFilter(session_id=session, kinds=[pb.NODE_KIND_PROMPT])
                )
            )
            for node in batch.nodes
        ]
        assert len(stored) == len(set(stored)) and set(acknowledged) <= set(stored)
        metrics = stub.GetMetrics(pb.GetMetricsRequest())
        assert metrics.nodes_by_kind["prompt"] == len(stored)
        assert metrics.sessions == len(sessions)
    finally:
        server.stop()
