"""The relay between workers (`servicers.relay`): unary calls passed to the owner of their
shard over a Unix socket, with gRPC as the fallback whenever a call could not be sent."""

from __future__ import annotations

import contextlib
import socket
import struct
import threading
import time
import uuid
from collections.abc import Iterator
from concurrent import futures
from pathlib import Path
from typing import Any

import grpc
import pytest
from memorygraph import deadline
from memorygraph.auth import KeyRing
from memorygraph.client import Client
from memorygraph.codec.routes import shard_of
from memorygraph.errors import DeadlineExceeded, NotFound, Unavailable
from memorygraph.servicers import relay as relay_module
from memorygraph.servicers.gate import CallGate, ServingStatus
from memorygraph.servicers.handlers import HandlerWrapper
from memorygraph.servicers.relay import RelayClient, RelayServer, relayed_error
from memorygraph.v1 import graph_pb2 as pb
from memorygraph.v1 import workers_pb2 as wpb

from .conftest import start_workers

GET_NODE = "/memorygraph.v1.MemoryGraphService/GetNode"
MAX_BYTES = 1 << 20
GAVE_UP = threading.Event()
RAN: list[str] = []


def _get_node(request: pb.GetNodeRequest, context: grpc.ServicerContext) -> pb.Node:
    if request.node_id == "missing":
        raise NotFound("node missing not found")
    if request.node_id == "remaining":  # what the call has left, as work it starts sees it
        return pb.Node(id="remaining", content=repr(deadline.remaining()))
    if request.node_id.startswith("sleep"):
        time.sleep(float(request.node_id[5:]))
    if request.node_id == "watch":  # until the caller gives up
        while context.is_active():
            time.sleep(0.01)
        GAVE_UP.set()
    if request.node_id == "recorded":
        RAN.append(request.node_id)
    if request.node_id == "huge":
        return pb.Node(id="huge", content="x" * MAX_BYTES)
    seen = dict(context.invocation_metadata())
    return pb.Node(id=request.node_id, content=seen.get("x-request-id", ""))


def _relay(
    name: str, keys: str | None = None, max_connections: int = 8, max_calls: int = 8
) -> RelayServer:
    handler = grpc.unary_unary_rpc_method_handler(
        _get_node,
        request_deserializer=pb.GetNodeRequest.FromString,
        response_serializer=pb.Node.SerializeToString,
    )
    gate = CallGate(
        KeyRing(None, keys) if keys else None,
        status=ServingStatus(),
        health_pool=futures.ThreadPoolExecutor(1),
    )
    return RelayServer(
        name,
        {GET_NODE: HandlerWrapper().wrap(GET_NODE, handler)},
        gate.intercept_service,
        max_connections=max_connections,
        max_calls=max_calls,
        max_bytes=MAX_BYTES,
    )


@pytest.fixture
def name() -> str:
    return f"memorygraph-test-relay-{uuid.uuid4().hex}"


@pytest.fixture
def relay(name: str) -> Iterator[RelayServer]:
    server = _relay(name)
    server.start()
    yield server
    server.stop()
    server.wait(5)


def _get(client: RelayClient, node_id: str, timeout: float | None = 5.0, **metadata: str) -> Any:
    request = pb.GetNodeRequest(node_id=node_id).SerializeToString()
    return client.call(GET_NODE, request, list(metadata.items()), timeout)


def test_a_call_is_answered_by_the_handler_with_its_metadata(relay: RelayServer) -> None:
    client = RelayClient(relay.name, MAX_BYTES)
    for number in range(3):  # one connection, call after call
        answer = _get(client, f"n{number}", **{"x-request-id": f"r{number}"})
        assert answer.code == 0
        assert pb.Node.FromString(answer.response) == pb.Node(id=f"n{number}", content=f"r{number}")


def test_errors_come_back_with_their_code_and_message(relay: RelayServer) -> None:
    answer = _get(RelayClient(relay.name, MAX_BYTES), "missing")
    assert answer.code == grpc.StatusCode.NOT_FOUND.value[0]
    error = relayed_error(answer)
    assert error.code.name == "NOT_FOUND" and str(error) == "node missing not found"
    unknown = _get(RelayClient(relay.name, MAX_BYTES), "x")
    unknown.code = 2  # UNKNOWN: not an answer of the handler wrapper's
    assert isinstance(relayed_error(unknown), Unavailable)


def test_a_method_not_relayed_is_unimplemented(relay: RelayServer) -> None:
    client = RelayClient(relay.name, MAX_BYTES)
    answer = client.call("/memorygraph.v1.MemoryGraphService/Nope", b"", [], 5.0)
    assert answer.code == grpc.StatusCode.UNIMPLEMENTED.value[0]


def test_calls_need_a_key_when_the_graph_has_keys(name: str) -> None:
    server = _relay(name, keys="secret")
    server.start()
    try:
        client = RelayClient(name, MAX_BYTES)
        refused = _get(client, "n")
        assert refused.code == grpc.StatusCode.UNAUTHENTICATED.value[0]
        assert _get(client, "n", authorization="Bearer wrong").code != 0
        assert _get(client, "n", authorization="Bearer secret").code == 0
    finally:
        server.stop()
        server.wait(5)


def test_no_relay_or_a_full_one_means_the_call_goes_over_grpc(name: str) -> None:
    assert _get(RelayClient(name, MAX_BYTES), "n") is None  # nobody listens
    server = _relay(name, max_connections=1)
    server.start()
    try:
        first, second = RelayClient(name, MAX_BYTES), RelayClient(name, MAX_BYTES)
        assert _get(first, "n").code == 0  # holds the only connection
        assert _get(second, "n") is None
    finally:
        server.stop()
        server.wait(5)


def test_a_relay_that_started_again_is_reached_on_a_new_connection(name: str) -> None:
    client = RelayClient(name, MAX_BYTES)
    for _ in range(2):
        server = _relay(name)
        server.start()
        try:
            assert _get(client, "n").code == 0
        finally:
            server.stop()
            server.wait(5)
    assert _get(client, "n") is None  # stopped: nothing ran, the caller uses gRPC


def test_a_stopped_relay_frees_its_name_at_once(name: str) -> None:
    for _ in range(50):  # a worker's relay stopped and started again in one process
        server = _relay(name)
        server.start()
        server.stop()
        server.wait(5)


def test_a_too_large_request_is_left_to_grpc(relay: RelayServer) -> None:
    client = RelayClient(relay.name, MAX_BYTES)
    assert client.call(GET_NODE, b"x" * (MAX_BYTES + 1), [], 5.0) is None


def _raw_relay(name: str, answer: bool) -> tuple[socket.socket, threading.Thread]:
    """A relay that reads one call and then closes the connection, or never answers."""
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind("\0" + name)
    listener.listen(1)

    def serve() -> None:
        connection, _ = listener.accept()
        connection.sendall(b"\x01")
        connection.recv(1 << 16)
        if not answer:
            time.sleep(1.0)
        connection.close()

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    return listener, thread


def test_a_connection_lost_after_the_call_was_sent_is_unavailable(name: str) -> None:
    listener, thread = _raw_relay(name, answer=True)
    try:
        with pytest.raises(Unavailable):
            _get(RelayClient(name, MAX_BYTES), "n")
    finally:
        thread.join()
        listener.close()


def test_the_deadline_bounds_the_wait_for_an_answer(name: str) -> None:
    listener, thread = _raw_relay(name, answer=False)
    try:
        started = time.monotonic()
        with pytest.raises(DeadlineExceeded):
            _get(RelayClient(name, MAX_BYTES), "n", timeout=0.2)
        assert time.monotonic() - started < 0.9
        with pytest.raises(DeadlineExceeded):
            _get(RelayClient(name, MAX_BYTES), "n", timeout=0.0)
    finally:
        thread.join()
        listener.close()


def test_the_handler_sees_the_deadline(relay: RelayServer) -> None:
    client = RelayClient(relay.name, MAX_BYTES)
    left = float(pb.Node.FromString(_get(client, "remaining", timeout=3.0).response).content)
    assert 2.0 < left <= 3.0
    default = pb.Node.FromString(_get(client, "remaining", timeout=None).response).content
    assert 29.0 < float(default) <= 30.0  # none sent: the server's default deadline


def _connect(name: str) -> socket.socket:
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.settimeout(5)
    sock.connect("\0" + name)
    assert sock.recv(1) == b"\x01"
    return sock


def _call_bytes(request: bytes, **metadata: str) -> bytes:
    call = wpb.RelayCall(method=GET_NODE)
    for key, value in metadata.items():
        call.metadata.add(key=key, value=value)
    header = call.SerializeToString()
    return struct.pack(">II", len(header), len(request)) + header + request


def _answer(sock: socket.socket) -> wpb.RelayAnswer:
    data = b""
    while len(data) < 4 or len(data) < 4 + struct.unpack(">I", data[:4])[0]:
        more = sock.recv(1 << 16)
        assert more, "the relay closed the connection without an answer"
        data += more
    return wpb.RelayAnswer.FromString(data[4:])


@pytest.mark.parametrize(
    "frame",
    [struct.pack(">II", 1 << 31, 0), struct.pack(">II", 5, 0) + b"\xff\xff\xff\xff\xff"],
    ids=["header-over-the-limit", "not-a-call"],
)
def test_what_is_not_a_call_ends_its_connection_only(relay: RelayServer, frame: bytes) -> None:
    bad = _connect(relay.name)
    bad.sendall(frame)
    assert bad.recv(1) == b""  # closed, nothing allocated for the claimed size
    bad.close()
    assert _get(RelayClient(relay.name, MAX_BYTES), "n").code == 0


def test_a_call_split_over_many_writes_is_read_whole(relay: RelayServer) -> None:
    frame = _call_bytes(pb.GetNodeRequest(node_id="n" * 100_000).SerializeToString())
    sock = _connect(relay.name)
    for start in range(0, len(frame), 7001):
        sock.sendall(frame[start : start + 7001])
    answer = _answer(sock)
    sock.close()
    assert pb.Node.FromString(answer.response).id == "n" * 100_000


def test_a_caller_without_a_key_is_refused_and_its_request_not_kept(name: str) -> None:
    server = _relay(name, keys="secret")
    server.start()
    try:
        sock = _connect(name)
        header = wpb.RelayCall(method=GET_NODE).SerializeToString()
        sock.sendall(struct.pack(">II", len(header), MAX_BYTES) + header)
        for _ in range(MAX_BYTES // 65536):  # read past in pieces, never held whole
            sock.sendall(b"\0" * 65536)
        assert _answer(sock).code == grpc.StatusCode.UNAUTHENTICATED.value[0]
        assert sock.recv(1) == b""  # and the connection ends
        keyed = _connect(name)
        call = wpb.RelayCall(method=GET_NODE)
        call.metadata.add(key="authorization", value="Bearer secret")
        header = call.SerializeToString()
        keyed.sendall(struct.pack(">II", len(header), MAX_BYTES + 1) + header)
        assert _answer(keyed).code == grpc.StatusCode.RESOURCE_EXHAUSTED.value[0]
    finally:
        server.stop()
        server.wait(5)


def test_a_request_over_the_limit_is_refused_unread(relay: RelayServer) -> None:
    sock = _connect(relay.name)
    header = wpb.RelayCall(method=GET_NODE).SerializeToString()
    sock.sendall(struct.pack(">II", len(header), MAX_BYTES + 1) + header)
    answer = _answer(sock)
    assert answer.code == grpc.StatusCode.RESOURCE_EXHAUSTED.value[0]
    assert "over the limit" in answer.details


def test_a_response_over_the_limit_is_refused(relay: RelayServer) -> None:
    answer = _get(RelayClient(relay.name, MAX_BYTES), "huge")
    assert answer.code == grpc.StatusCode.RESOURCE_EXHAUSTED.value[0]


def test_a_call_whose_bytes_stop_coming_ends_its_connection(
    relay: RelayServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(relay_module, "FRAME_SECONDS", 0.2)
    sock = _connect(relay.name)
    sock.sendall(_call_bytes(b"x" * 100)[:10])
    started = time.monotonic()
    assert sock.recv(1) == b""
    assert time.monotonic() - started < 3


def test_metadata_that_is_not_printable_is_dropped(relay: RelayServer) -> None:
    client = RelayClient(relay.name, MAX_BYTES)
    answer = _get(client, "n", **{"x-request-id": "a\nb"})
    assert pb.Node.FromString(answer.response).content == ""


def test_a_stopping_relay_answers_the_calls_under_way(relay: RelayServer) -> None:
    client = RelayClient(relay.name, MAX_BYTES)
    assert _get(client, "n").code == 0
    idle = RelayClient(relay.name, MAX_BYTES)
    assert _get(idle, "n").code == 0  # an idle connection, closed by the stop
    with futures.ThreadPoolExecutor(1) as pool:
        running = pool.submit(_get, client, "sleep0.5")
        time.sleep(0.2)
        relay.stop()
        relay.wait(5)
        assert running.result().code == 0
    assert _get(idle, "n") is None  # not sent: the caller uses gRPC
    assert _get(RelayClient(relay.name, MAX_BYTES), "n") is None


def test_after_the_grace_period_nothing_more_starts_and_running_calls_see_no_caller(
    name: str,
) -> None:
    RAN.clear()
    GAVE_UP.clear()
    server = _relay(name, max_calls=2)
    server.start()
    with futures.ThreadPoolExecutor(3) as pool:
        watching = pool.submit(_get, RelayClient(name, MAX_BYTES), "watch", 10.0)
        running = pool.submit(_get, RelayClient(name, MAX_BYTES), "sleep1.0", 10.0)
        time.sleep(0.2)
        queued = pool.submit(_get, RelayClient(name, MAX_BYTES), "recorded", 10.0)
        time.sleep(0.2)
        server.stop()
        server.wait(0.3)  # the grace period ends with three calls under way
        assert GAVE_UP.wait(5)  # the handler's check of its caller ended it
        with pytest.raises(Unavailable):
            watching.result()
        with pytest.raises(Unavailable):
            running.result()
        with pytest.raises(Unavailable):
            queued.result()
    time.sleep(1.2)
    assert RAN == []  # the queued call never started


def test_a_large_refused_request_gets_its_refusal(name: str) -> None:
    server = _relay(name, keys="secret")
    server.start()
    try:
        client = RelayClient(name, MAX_BYTES)
        big = pb.GetNodeRequest(node_id="n" * (MAX_BYTES // 2)).SerializeToString()
        for _ in range(2):
            answer = client.call(GET_NODE, big, [], 5.0)
            assert answer is not None and answer.code == grpc.StatusCode.UNAUTHENTICATED.value[0]
    finally:
        server.stop()
        server.wait(5)


def test_a_connection_must_send_its_call_in_time(
    relay: RelayServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(relay_module, "FRAME_SECONDS", 0.3)
    silent = _connect(relay.name)
    started = time.monotonic()
    assert silent.recv(1) == b""  # sent nothing: let go
    trickling = _connect(relay.name)
    frame = _call_bytes(b"x" * 100)
    with contextlib.suppress(OSError):
        for byte in frame:  # every byte well within the limit, the call as a whole not
            trickling.sendall(bytes([byte]))
            time.sleep(0.05)
    assert trickling.recv(1) == b""
    assert time.monotonic() - started < 5
    assert _get(RelayClient(relay.name, MAX_BYTES), "n").code == 0


def test_calls_beyond_the_cap_wait_within_their_deadline(name: str) -> None:
    server = _relay(name, max_calls=1)
    server.start()
    try:
        with futures.ThreadPoolExecutor(2) as pool:
            slow = pool.submit(_get, RelayClient(name, MAX_BYTES), "sleep0.6")
            time.sleep(0.2)
            try:  # the caller's own deadline or the relay's answer, whichever comes first
                queued = _get(RelayClient(name, MAX_BYTES), "recorded", timeout=0.2)
                assert queued.code == grpc.StatusCode.DEADLINE_EXCEEDED.value[0]
            except DeadlineExceeded:
                pass
            assert _get(RelayClient(name, MAX_BYTES), "n", timeout=5).code == 0  # waited
            assert slow.result().code == 0
        time.sleep(0.2)
        assert RAN == []  # the call that timed out in the queue never ran
    finally:
        server.stop()
        server.wait(5)


def test_the_handler_sees_a_caller_that_gave_up(relay: RelayServer) -> None:
    GAVE_UP.clear()
    with pytest.raises(DeadlineExceeded):
        _get(RelayClient(relay.name, MAX_BYTES), "watch", timeout=0.2)
    assert GAVE_UP.wait(5)


def test_connections_reuse_the_relays_threads(relay: RelayServer) -> None:
    for _ in range(30):
        client = RelayClient(relay.name, MAX_BYTES)
        assert _get(client, "n").code == 0
        client._drop()
        time.sleep(0.01)
    relay_threads = [t for t in threading.enumerate() if t.name.startswith("relay_")]
    assert len(relay_threads) <= 3


def test_sending_and_greeting_stay_within_the_deadline(name: str) -> None:
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind("\0" + name)
    listener.listen(8)  # connections wait in the backlog: no greeting ever comes
    try:
        started = time.monotonic()
        assert _get(RelayClient(name, MAX_BYTES), "n", timeout=0.2) is None
        assert time.monotonic() - started < 1.0
        accepted: list[socket.socket] = []

        def greet_and_never_read() -> None:
            while True:  # the first is the connection given up above
                connection, _ = listener.accept()
                accepted.append(connection)
                with contextlib.suppress(OSError):
                    connection.sendall(b"\x01")
                    return

        thread = threading.Thread(target=greet_and_never_read)
        thread.start()
        client = RelayClient(name, 8 << 20)
        started = time.monotonic()
        with pytest.raises(DeadlineExceeded):
            client.call(GET_NODE, b"x" * (4 << 20), [], 0.5)
        assert time.monotonic() - started < 2.0
        thread.join()
    finally:
        listener.close()


def _node_on(client: Client, worker: int) -> str:
    """A new prompt on `worker`'s shards."""
    owners = client.get_shard_map().owners
    while True:
        prompt = client.add_prompt(client.create_session().id, "hello")
        if owners[shard_of(("id", prompt.id), len(owners))] == worker:
            return str(prompt.id)


def test_forwarded_calls_go_over_the_relay_and_over_grpc_without_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    servers = start_workers(tmp_path / "data", 2)
    try:
        relayed: list[str] = []
        original = RelayClient.call

        def spy(self: RelayClient, method: str, *args: Any) -> Any:
            answer = original(self, method, *args)
            relayed.append(method if answer is not None else "")
            return answer

        monkeypatch.setattr(RelayClient, "call", spy)
        with Client(f"127.0.0.1:{servers[0].config.port + 1}", route=False) as first:
            node, gone = _node_on(first, 1), _node_on(first, 1)
            assert first.get_node(node).content == "hello"
            assert relayed[-1] == GET_NODE
            first.delete_node(gone)
            with pytest.raises(NotFound):
                first.get_node(gone)
            assert relayed[-1] == GET_NODE
            assert servers[1].relay is not None
            servers[1].relay.stop()  # worker 1 is there, its relay is not: gRPC
            servers[1].relay.wait(5)
            assert first.get_node(node).content == "hello"
            assert relayed[-1] == ""
    finally:
        for server in reversed(servers):
            server.stop()
