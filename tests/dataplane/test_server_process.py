"""`memorygraph serve` as a real subprocess: restarts, kill -9, graceful shutdown, bad setup."""

from __future__ import annotations

import ctypes
import os
import signal
import subprocess
import threading
import urllib.request
from pathlib import Path

import grpc
import pytest
from memorygraph.v1 import graph_pb2 as pb
from memorygraph.v1.graph_pb2_grpc import MemoryGraphServiceStub

from .conftest import REPO, ServerProcess, serve_command
from .rpc_support import add_prompts

pytestmark = pytest.mark.slow


def stub_for(server: ServerProcess) -> tuple[grpc.Channel, MemoryGraphServiceStub]:
    channel = grpc.insecure_channel(server.address)
    return channel, MemoryGraphServiceStub(channel)


def test_data_survives_a_clean_restart(tmp_path: Path) -> None:
    server = ServerProcess(tmp_path / "data").start()
    channel, stub = stub_for(server)
    session = stub.CreateSession(pb.CreateSessionRequest(title="kept"))
    prompt = stub.AddPrompt(pb.AddPromptRequest(session_id=session.id, content="remember me"))
    stub.AddResponse(
        pb.AddResponseRequest(
            prompt_id=prompt.id, content="ok", token_usage=pb.TokenUsage(prompt_tokens=2)
        )
    )
    channel.close()
    assert server.stop(signal.SIGTERM) == 0
    assert "store closed cleanly" in server.output()

    server.start()
    channel, stub = stub_for(server)
    try:
        assert stub.GetSession(pb.GetSessionRequest(session_id=session.id)).title == "kept"
        assert stub.GetNode(pb.GetNodeRequest(node_id=prompt.id)).content == "remember me"
        nodes = stub.Query(pb.QueryRequest(filter=pb.QueryFilter(session_id=session.id))).nodes
        assert [n.kind for n in nodes] == [pb.NODE_KIND_PROMPT, pb.NODE_KIND_RESPONSE]
        metrics = stub.GetMetrics(pb.GetMetricsRequest())
        assert metrics.edges == 2 and metrics.token_usage.prompt_tokens == 2
    finally:
        channel.close()
        server.stop()


@pytest.mark.parametrize("durability", ["durable", "fast"])
def test_every_acknowledged_write_survives_kill_9(tmp_path: Path, durability: str) -> None:
    server = ServerProcess(tmp_path / "data", "--durability", durability).start()
    channel, stub = stub_for(server)
    session = stub.CreateSession(pb.CreateSessionRequest())
    acknowledged: list[str] = []
    enough = threading.Event()

    def write() -> None:
        while True:
            try:
                node = stub.AddPrompt(
                    pb.AddPromptRequest(session_id=session.id, content=f"p{len(acknowledged)}"),
                    timeout=5,
                )
            except grpc.RpcError:
                return  # the server died mid-call: that write was never acknowledged
            acknowledged.append(node.id)
            if len(acknowledged) >= 200:
                enough.set()

    server.kill_while_writing(write, writers=4, enough=enough, join=10)
    channel.close()

    server.start()
    channel, stub = stub_for(server)
    try:
        found = stub.BatchGetNodes(pb.BatchGetNodesRequest(node_ids=acknowledged))
        assert list(found.missing_ids) == []
        stored = list(
            stub.StreamQuery(pb.StreamQueryRequest(filter=pb.QueryFilter(session_id=session.id)))
        )
        stored_ids = {n.id for batch in stored for n in batch.nodes}
        assert set(acknowledged) <= stored_ids
        # Indexes and counters were written in the same batches as the records.
        metrics = stub.GetMetrics(pb.GetMetricsRequest())
        assert metrics.nodes_by_kind["prompt"] == len(stored_ids)
        assert metrics.edges == 2 * len(stored_ids) - 1  # belongs_to each, follows all but first
    finally:
        channel.close()
        server.stop()


def test_sigterm_lets_in_flight_streams_finish(tmp_path: Path) -> None:
    server = ServerProcess(tmp_path / "data").start()
    channel, stub = stub_for(server)
    session = stub.CreateSession(pb.CreateSessionRequest())
    add_prompts(stub, session.id, 5000, batch=1000)
    stream = stub.StreamQuery(
        pb.StreamQueryRequest(filter=pb.QueryFilter(session_id=session.id), batch_size=100)
    )
    received = len(next(stream).nodes)
    assert server.proc is not None
    server.proc.send_signal(signal.SIGTERM)
    received += sum(len(batch.nodes) for batch in stream)
    assert received == 5000
    assert server.stop(timeout=30) == 0
    channel.close()
    assert "received SIGTERM" in server.output()


# tgkill(2): send a signal to one thread of a process.
_SYS_TGKILL = {"x86_64": 234, "aarch64": 131}.get(os.uname().machine)


@pytest.mark.skipif(_SYS_TGKILL is None, reason="tgkill syscall number unknown here")
def test_sigterm_taken_by_another_thread_still_stops_the_server(tmp_path: Path) -> None:
    # The kernel may hand a process's SIGTERM to any thread that does not block it; Python acts
    # on signals only in its main thread, which must notice.
    server = ServerProcess(tmp_path / "data").start()
    assert server.proc is not None
    pid = server.proc.pid
    sigterm_bit = 1 << (signal.SIGTERM - 1)

    def takes_sigterm(tid: str) -> bool:
        status = Path(f"/proc/{pid}/task/{tid}/status").read_text()
        blocked = next(line for line in status.splitlines() if line.startswith("SigBlk:"))
        return not int(blocked.split()[1], 16) & sigterm_bit

    other = next(
        int(t) for t in os.listdir(f"/proc/{pid}/task") if t != str(pid) and takes_sigterm(t)
    )
    libc = ctypes.CDLL(None, use_errno=True)
    assert libc.syscall(_SYS_TGKILL, pid, other, signal.SIGTERM) == 0, ctypes.get_errno()
    assert server.proc.wait(timeout=15) == 0, server.output()
    server.proc = None
    assert "received SIGTERM" in server.output()


def test_second_server_on_the_same_data_dir_is_refused(server_process: ServerProcess) -> None:
    env = {**os.environ, "PYTHONPATH": str(REPO / "dataplane")}
    result = subprocess.run(
        serve_command(server_process.data_dir, 0, 0),
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
    )
    assert result.returncode == 2
    assert "in use by another MemoryGraph process" in result.stderr
    assert "Traceback" not in result.stderr


def test_metrics_and_probes_are_served_over_http(server_process: ServerProcess) -> None:
    base = f"http://127.0.0.1:{server_process.metrics_port}"
    channel, stub = stub_for(server_process)
    stub.CreateSession(pb.CreateSessionRequest())
    channel.close()
    with urllib.request.urlopen(f"{base}/readyz", timeout=5) as reply:
        assert reply.status == 200
    with urllib.request.urlopen(f"{base}/healthz", timeout=5) as reply:
        assert reply.status == 200
    with urllib.request.urlopen(f"{base}/metrics", timeout=5) as reply:
        text = reply.read().decode()
    assert 'memorygraph_rpc_requests_total{code="OK",method="CreateSession"} 1.0' in text
    assert 'memorygraph_store_objects{kind="session"} 1.0' in text
    assert "memorygraph_event_log_events 1.0" in text  # the session's creation
