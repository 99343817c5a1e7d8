"""The relay between workers (`servicers.relay`): unary calls passed to the owner of their
shard over a Unix socket, with gRPC as the fallback whenever a call could not be sent."""

from __future__ import annotations

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
from memorygraph.servicers.gate import CallGate, ServingStatus
from memorygraph.servicers.handlers import HandlerWrapper
from memorygraph.servicers.relay import RelayClient, RelayServer, relayed_error
from memorygraph.v1 import graph_pb2 as pb
from memorygraph.v1 import workers_pb2 as wpb

from .conftest import start_workers

GET_NODE = "/memorygraph.v1.MemoryGraphService/GetNode"
MAX_BYTES = 1 << 20


def _get_node(request: pb.GetNodeRequest, context: grpc.ServicerContext) -> pb.Node:
    if request.node_id == "missing":
        raise NotFound("node missing not found")
    if request.node_id == "remaining":  # what the call has left, as work it starts sees it
        return pb.Node(id="remaining", content=repr(deadline.remaining()))
    seen = dict(context.invocation_metadata())
    return pb.Node(id=request.node_id, content=seen.get("x-request-id", ""))


def _relay(name: str, keys: str | None = None, max_connections: int = 8) -> RelayServer:
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


def test_a_relay_that_started_again_is_reached_on_a_new_connection(name: str) -> None:
    client = RelayClient(name, MAX_BYTES)
    for _ in range(2):
        server = _relay(name)
        server.start()
        try:
            assert _get(client, "n").code == 0
        finally:
            server.stop()
    assert _get(client, "n") is None  # stopped: nothing ran, the caller uses gRPC


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


@pytest.mark.parametrize(
    "frame",
    [struct.pack(">I", 1 << 31), struct.pack(">I", 5) + b"\xff\xff\xff\xff\xff"],
    ids=["over-the-limit", "not-a-call"],
)
def test_what_is_not_a_call_ends_its_connection_only(relay: RelayServer, frame: bytes) -> None:
    bad = _connect(relay.name)
    bad.sendall(frame)
    assert bad.recv(1) == b""  # closed, nothing allocated for the claimed size
    bad.close()
    assert _get(RelayClient(relay.name, MAX_BYTES), "n").code == 0


def test_a_frame_split_over_many_writes_is_read_whole(relay: RelayServer) -> None:
    request = pb.GetNodeRequest(node_id="n" * 100_000).SerializeToString()
    body = wpb.RelayCall(method=GET_NODE, request=request).SerializeToString()
    sock = _connect(relay.name)
    frame = struct.pack(">I", len(body)) + body
    for start in range(0, len(frame), 7001):
        sock.sendall(frame[start : start + 7001])
    header = b""
    while len(header) < 4:
        header += sock.recv(4 - len(header))
    (size,) = struct.unpack(">I", header)
    answer = b""
    while len(answer) < size:
        answer += sock.recv(size - len(answer))
    sock.close()
    assert pb.Node.FromString(wpb.RelayAnswer.FromString(answer).response).id == "n" * 100_000


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
            assert first.get_node(node).content == "hello"
            assert relayed[-1] == ""
    finally:
        for server in reversed(servers):
            server.stop()
