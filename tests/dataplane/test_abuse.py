"""What an attacker or a careless client can do to a running server: calls that never send their
request, idle connections to the metrics port, request bytes that are no message, keys files
emptied or deleted. The server keeps serving, reports honestly, and logs within bounds."""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from memorygraph.metrics.endpoint import MetricsServer
from memorygraph.server import RunningServer
from memorygraph.servicers.pools import ElasticPool
from memorygraph.v1 import graph_pb2 as pb
from memorygraph.v1.graph_pb2_grpc import MemoryGraphServiceStub
from prometheus_client import REGISTRY

Start = Callable[..., RunningServer]
KEY = (("authorization", "Bearer key-alpha"),)
GET_NODE = "/memorygraph.v1.MemoryGraphService/GetNode"


@pytest.fixture
def keys_file(tmp_path: Path) -> Path:
    path = tmp_path / "keys"
    path.write_text("key-alpha\n")
    return path


class Stalls:
    """Unary calls whose request message never comes: the channel sends the call's headers
    and then nothing (a client-streaming call whose requests never arrive)."""

    def __init__(self, channel: grpc.Channel) -> None:
        self.channel = channel
        self.release = threading.Event()
        self.calls: list[grpc.Future] = []

    def _never(self) -> Iterator[bytes]:
        self.release.wait()
        return
        yield b""

    def open(self, method: str, count: int, metadata: tuple[tuple[str, str], ...] = ()) -> None:
        call = self.channel.stream_unary(method)
        for _ in range(count):
            self.calls.append(call.future(self._never(), metadata=metadata, timeout=120))

    def end(self) -> None:
        self.release.set()
        for call in self.calls:
            call.cancel()


def _metric(port: int, name: str) -> float:
    """The value of an unlabelled series on the metrics port."""
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as reply:
        for line in reply.read().decode().splitlines():
            if line.startswith(f"{name} "):
                return float(line.split()[1])
    raise AssertionError(f"no {name} on /metrics")


def _http(port: int, path: str) -> int:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=5) as reply:
            return int(reply.status)
    except urllib.error.HTTPError as exc:
        return exc.code


def test_calls_without_credentials_that_never_send_a_request_hold_no_worker(
    start_inprocess: Start, keys_file: Path
) -> None:
    server = start_inprocess(
        max_workers=8, max_streams=2, auth={"enabled": True, "api_keys_file": keys_file}
    )
    address = f"127.0.0.1:{server.port}"
    with grpc.insecure_channel(address) as attacker, grpc.insecure_channel(address) as user:
        stalls = Stalls(attacker)
        stalls.open(GET_NODE, 64)
        try:
            time.sleep(0.5)
            stub = MemoryGraphServiceStub(user)
            for _ in range(20):  # every worker would be needed, were any held
                session = stub.CreateSession(pb.CreateSessionRequest(), metadata=KEY, timeout=5)
                stub.GetNode(pb.GetNodeRequest(node_id=session.id), metadata=KEY, timeout=5)
            check = health_pb2_grpc.HealthStub(user).Check(
                health_pb2.HealthCheckRequest(), timeout=5
            )
            assert check.status == health_pb2.HealthCheckResponse.SERVING
            refused = [c.exception() for c in stalls.calls[:5]]
            assert all(
                e is not None and e.code() == grpc.StatusCode.UNAUTHENTICATED for e in refused
            )
        finally:
            stalls.end()


@pytest.mark.one_process
def test_a_wedged_server_keeps_answering_health_checks_and_reports_itself_unhealthy(
    start_inprocess: Start, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Callers with access can still occupy every worker; health checks run on their own
    threads and say so, and liveness fails until the workers are free again."""
    monkeypatch.setattr("memorygraph.servicers.watchdog.CHECK_SECONDS", 0.2)
    monkeypatch.setattr("memorygraph.servicers.watchdog.WEDGED_AFTER_SECONDS", 1.0)
    server = start_inprocess(max_workers=4, max_streams=1, max_open_streams=1)
    address = f"127.0.0.1:{server.port}"
    port = server.metrics_server.port
    with grpc.insecure_channel(address) as attacker, grpc.insecure_channel(address) as prober:
        health = health_pb2_grpc.HealthStub(prober)

        def status() -> int:
            return int(health.Check(health_pb2.HealthCheckRequest(), timeout=3).status)

        assert _http(port, "/healthz") == 200
        stalls = Stalls(attacker)
        stalls.open(GET_NODE, 8)
        try:
            deadline = time.monotonic() + 10
            while status() == health_pb2.HealthCheckResponse.SERVING:
                assert time.monotonic() < deadline, "a wedged server still says SERVING"
                time.sleep(0.1)
            assert status() == health_pb2.HealthCheckResponse.NOT_SERVING
            assert _http(port, "/healthz") == 503
            assert _http(port, "/readyz") == 503
        finally:
            stalls.end()
        deadline = time.monotonic() + 10
        while status() != health_pb2.HealthCheckResponse.SERVING:
            assert time.monotonic() < deadline, "the server did not recover"
            time.sleep(0.1)
        assert _http(port, "/healthz") == 200


@pytest.mark.one_process  # the threads and the metrics of one process
def test_reads_go_on_while_callers_hold_the_threads_that_take_them(
    start_inprocess: Start,
) -> None:
    """Reads run on a few threads (`core_workers`): calls that never send their request hold
    them, and a read that has waited behind those goes to a spare thread and is answered."""
    server = start_inprocess(core_workers=1, max_workers=8, max_streams=2)
    address = f"127.0.0.1:{server.port}"
    port = server.metrics_server.port
    spared = _metric(port, "memorygraph_reads_spared_total")
    with grpc.insecure_channel(address) as attacker, grpc.insecure_channel(address) as user:
        stub = MemoryGraphServiceStub(user)
        session = stub.CreateSession(pb.CreateSessionRequest(), timeout=5)
        stalls = Stalls(attacker)
        stalls.open(GET_NODE, 3)
        try:
            reads = server.pools[1]
            assert isinstance(reads, ElasticPool)
            deadline = time.monotonic() + 10
            while reads.busy < 3:  # the stalled calls hold the core thread and two spares
                assert time.monotonic() < deadline, f"{reads.busy} threads held"
                time.sleep(0.05)
            for _ in range(5):
                got = stub.GetNode(pb.GetNodeRequest(node_id=session.id), timeout=5)
                assert got.id == session.id
                stub.AddPrompt(pb.AddPromptRequest(session_id=session.id, content="x"), timeout=5)
            assert not any(c.done() for c in stalls.calls)
            # The metrics say so: the threads reads run on, and the reads spares took.
            assert _metric(port, "memorygraph_read_threads") >= 4
            assert _metric(port, "memorygraph_reads_spared_total") - spared >= 5
        finally:
            stalls.end()


@pytest.mark.one_process
def test_writes_held_by_callers_that_never_send_make_the_server_report_itself_unhealthy(
    start_inprocess: Start, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Writes run on a pool of their own: held whole, the server cannot write and says so,
    while reads still answer."""
    monkeypatch.setattr("memorygraph.servicers.watchdog.CHECK_SECONDS", 0.2)
    monkeypatch.setattr("memorygraph.servicers.watchdog.WEDGED_AFTER_SECONDS", 1.0)
    server = start_inprocess(max_workers=4, max_streams=1, max_open_streams=1)
    address = f"127.0.0.1:{server.port}"
    with grpc.insecure_channel(address) as attacker, grpc.insecure_channel(address) as user:
        stub = MemoryGraphServiceStub(user)
        session = stub.CreateSession(pb.CreateSessionRequest(), timeout=5)
        health = health_pb2_grpc.HealthStub(user)
        stalls = Stalls(attacker)
        stalls.open("/memorygraph.v1.MemoryGraphService/AddPrompt", 8)
        try:
            deadline = time.monotonic() + 10
            while (
                health.Check(health_pb2.HealthCheckRequest(), timeout=3).status
                == health_pb2.HealthCheckResponse.SERVING
            ):
                assert time.monotonic() < deadline, "a server that cannot write says SERVING"
                time.sleep(0.1)
            assert _http(server.metrics_server.port, "/healthz") == 503
            assert stub.GetNode(pb.GetNodeRequest(node_id=session.id), timeout=5).id == session.id
        finally:
            stalls.end()


def test_the_metrics_port_holds_a_bounded_number_of_idle_connections_and_drops_them() -> None:
    endpoint = MetricsServer("127.0.0.1", 0, max_connections=8, timeout=1.0)
    endpoint.start()
    before = threading.active_count()
    idle = [socket.create_connection(("127.0.0.1", endpoint.port)) for _ in range(100)]
    try:
        time.sleep(0.3)
        assert threading.active_count() - before <= 8
        time.sleep(1.5)  # the idle ones time out and free their threads
        assert _http(endpoint.port, "/healthz") == 200
        assert threading.active_count() - before <= 8
    finally:
        for sock in idle:
            sock.close()
        endpoint.stop()


@pytest.mark.one_process("the once-a-minute log is shared by the servers of one process")
def test_request_bytes_that_are_no_message_are_invalid_argument_and_logged_sparingly(
    start_inprocess: Start, caplog: pytest.LogCaptureFixture
) -> None:
    server = start_inprocess()
    caplog.set_level(logging.INFO)
    with grpc.insecure_channel(f"127.0.0.1:{server.port}") as channel:
        raw = channel.unary_unary(GET_NODE)
        for i in range(200):
            with pytest.raises(grpc.RpcError) as info:
                # Field 1 with wire type 7, which does not exist: never a message.
                raw(bytes([0x0F, i % 256]) + os.urandom(8), timeout=5)
            assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
            assert "not a valid GetNode request" in info.value.details()
        # The server still parses good requests.
        stub = MemoryGraphServiceStub(channel)
        assert stub.Health(pb.HealthRequest(), timeout=5).status
    lines = [r for r in caplog.records if "not a valid" in r.getMessage()]
    assert len(lines) == 1
    assert not any(r.exc_info for r in caplog.records)


def _accepted(stub: MemoryGraphServiceStub) -> bool:
    try:
        stub.Health(pb.HealthRequest(), metadata=KEY, timeout=5)
    except grpc.RpcError as exc:
        assert exc.code() == grpc.StatusCode.UNAUTHENTICATED
        return False
    return True


def _reloads(result: str) -> float:
    value = REGISTRY.get_sample_value("memorygraph_auth_key_reloads_total", {"result": result})
    return value or 0.0


@pytest.mark.parametrize("revoke", ["empty", "delete"])
def test_emptying_or_deleting_the_keys_file_revokes_its_keys(
    start_inprocess: Start, keys_file: Path, monkeypatch: pytest.MonkeyPatch, revoke: str
) -> None:
    monkeypatch.setattr("memorygraph.servicers.gate.KEY_REFRESH_SECONDS", 0.0)
    server = start_inprocess(auth={"enabled": True, "api_keys_file": keys_file})
    counted = {"empty": _reloads("empty"), "unreadable": _reloads("unreadable")}
    with grpc.insecure_channel(f"127.0.0.1:{server.port}") as channel:
        stub = MemoryGraphServiceStub(channel)
        assert _accepted(stub)
        if revoke == "empty":
            keys_file.write_text("# rotated out\n")
            os.utime(keys_file, ns=(time.time_ns() + 10**9, time.time_ns() + 10**9))
        else:
            keys_file.unlink()
        assert not _accepted(stub)
        result = "empty" if revoke == "empty" else "unreadable"
        assert _reloads(result) == counted[result] + 1
        assert REGISTRY.get_sample_value("memorygraph_auth_keys") == 0
        keys_file.write_text("key-alpha\n")  # a key put back is accepted again
        os.utime(keys_file, ns=(time.time_ns() + 2 * 10**9, time.time_ns() + 2 * 10**9))
        assert _accepted(stub)


def test_health_checks_that_never_send_their_request_do_not_hold_up_other_checks(
    start_inprocess: Start, keys_file: Path
) -> None:
    server = start_inprocess(auth={"enabled": True, "api_keys_file": keys_file})
    address = f"127.0.0.1:{server.port}"
    with grpc.insecure_channel(address) as attacker, grpc.insecure_channel(address) as prober:
        stalls = Stalls(attacker)
        stalls.open("/grpc.health.v1.Health/Check", 32)
        try:
            time.sleep(0.5)
            for _ in range(5):
                reply = health_pb2_grpc.HealthStub(prober).Check(
                    health_pb2.HealthCheckRequest(), timeout=3
                )
                assert reply.status == health_pb2.HealthCheckResponse.SERVING
        finally:
            stalls.end()


def test_streams_open_without_a_key_are_few_and_watching_health_needs_one(
    start_inprocess: Start, keys_file: Path
) -> None:
    server = start_inprocess(
        max_workers=8,
        max_streams=2,
        max_open_streams=2,
        auth={"enabled": True, "api_keys_file": keys_file},
    )
    address = f"127.0.0.1:{server.port}"
    reflection = "/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo"
    with grpc.insecure_channel(address) as attacker, grpc.insecure_channel(address) as user:
        never = threading.Event()

        def silent() -> Iterator[bytes]:
            never.wait()
            return
            yield b""

        info = attacker.stream_stream(reflection)
        streams = [info(silent(), timeout=60) for _ in range(6)]
        try:
            time.sleep(0.5)
            refused = []
            for stream in streams:
                if stream.done() and stream.code() == grpc.StatusCode.RESOURCE_EXHAUSTED:
                    refused.append(stream)
            assert len(refused) == 4  # two admitted, the others refused at once
            stub = MemoryGraphServiceStub(user)
            for _ in range(10):
                stub.GetMetrics(pb.GetMetricsRequest(), metadata=KEY, timeout=5)
            watch = health_pb2_grpc.HealthStub(user).Watch(
                health_pb2.HealthCheckRequest(), timeout=5
            )
            with pytest.raises(grpc.RpcError) as refusal:
                next(watch)
            assert refusal.value.code() == grpc.StatusCode.UNAUTHENTICATED
        finally:
            never.set()
            for stream in streams:
                stream.cancel()


def test_slow_connections_to_the_metrics_port_cannot_keep_a_probe_out() -> None:
    endpoint = MetricsServer("127.0.0.1", 0, max_connections=4, timeout=5.0)
    endpoint.start()
    dribbling = []
    try:
        for _ in range(8):
            sock = socket.create_connection(("127.0.0.1", endpoint.port))
            sock.sendall(b"G")  # a request that never finishes
            dribbling.append(sock)
        time.sleep(0.3)
        for _ in range(3):
            assert _http(endpoint.port, "/healthz") == 200
    finally:
        for sock in dribbling:
            sock.close()
        endpoint.stop()


def test_a_keys_file_rewritten_with_bytes_that_are_not_text_revokes_its_keys(
    start_inprocess: Start, keys_file: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("memorygraph.servicers.gate.KEY_REFRESH_SECONDS", 0.0)
    server = start_inprocess(auth={"enabled": True, "api_keys_file": keys_file})
    with grpc.insecure_channel(f"127.0.0.1:{server.port}") as channel:
        stub = MemoryGraphServiceStub(channel)
        assert _accepted(stub)
        keys_file.write_bytes(b"\xff\xfe key-alpha\n")
        os.utime(keys_file, ns=(time.time_ns() + 10**9, time.time_ns() + 10**9))
        assert not _accepted(stub)


def test_streams_the_caller_cancels_are_not_logged_as_server_errors(
    start_inprocess: Start, caplog: pytest.LogCaptureFixture
) -> None:
    server = start_inprocess()
    caplog.set_level(logging.INFO)
    reflection = "/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo"
    with grpc.insecure_channel(f"127.0.0.1:{server.port}") as channel:
        never = threading.Event()

        def silent() -> Iterator[bytes]:
            never.wait()
            return
            yield b""

        streams = [channel.stream_stream(reflection)(silent()) for _ in range(3)]
        time.sleep(0.3)
        for stream in streams:
            stream.cancel()
        never.set()
        time.sleep(0.5)
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]
