"""Authentication by API key and transport security (TLS, mutual TLS, certificate reload)."""

from __future__ import annotations

import os
import shutil
import time
from collections.abc import Callable
from pathlib import Path

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from memorygraph.cli import main as cli_main
from memorygraph.errors import ConfigError
from memorygraph.server import RunningServer
from memorygraph.v1 import graph_pb2 as pb
from memorygraph.v1 import graph_pb2_grpc
from memorygraph.v1.graph_pb2_grpc import MemoryGraphServiceStub

from .certs import Authority

Start = Callable[..., RunningServer]
SERVICE = pb.DESCRIPTOR.services_by_name["MemoryGraphService"]


def every_rpc_call(stub: MemoryGraphServiceStub, method: str, metadata: tuple) -> None:
    """Call `method` with an empty request of the right shape and drain any stream."""
    descriptor = SERVICE.methods_by_name[method]
    request_type = getattr(pb, descriptor.input_type.name)
    call = getattr(stub, method)
    if descriptor.client_streaming:
        result = call(iter([request_type()]), metadata=metadata, timeout=5)
    else:
        result = call(request_type(), metadata=metadata, timeout=5)
    if descriptor.server_streaming:
        list(result)


@pytest.fixture
def keys_file(tmp_path: Path) -> Path:
    path = tmp_path / "api-keys"
    path.write_text("# rotated monthly\nkey-alpha\n\nkey-beta\n")
    return path


def test_every_rpc_without_a_valid_key_is_unauthenticated(
    start_inprocess: Start, keys_file: Path
) -> None:
    server = start_inprocess(auth={"enabled": True, "api_keys_file": keys_file})
    with grpc.insecure_channel(f"127.0.0.1:{server.port}") as channel:
        stub = MemoryGraphServiceStub(channel)
        for method in SERVICE.methods_by_name:
            for metadata in (
                (),
                (("authorization", "Bearer wrong"),),
                (("authorization", "Basic key-alpha"),),
            ):
                with pytest.raises(grpc.RpcError) as info:
                    every_rpc_call(stub, method, metadata)
                assert info.value.code() == grpc.StatusCode.UNAUTHENTICATED, method
        good = stub.CreateSession(
            pb.CreateSessionRequest(), metadata=(("authorization", "Bearer key-beta"),)
        )
        assert good.id
        also = stub.GetSession(
            pb.GetSessionRequest(session_id=good.id), metadata=(("x-api-key", "key-alpha"),)
        )
        assert also.id == good.id
        # Probes stay open so kubelets need no key.
        health = health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest())
        assert health.status == health_pb2.HealthCheckResponse.SERVING
        metrics = stub.GetMetrics(pb.GetMetricsRequest(), metadata=(("x-api-key", "key-alpha"),))
        assert metrics.sessions == 1  # none of the refused calls wrote anything


def test_health_can_require_a_key_too(start_inprocess: Start, keys_file: Path) -> None:
    server = start_inprocess(
        auth={"enabled": True, "api_keys_file": keys_file, "open_health": False}
    )
    with (
        grpc.insecure_channel(f"127.0.0.1:{server.port}") as channel,
        pytest.raises(grpc.RpcError) as info,
    ):
        health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest())
    assert info.value.code() == grpc.StatusCode.UNAUTHENTICATED


def test_rotated_keys_apply_without_restart(
    start_inprocess: Start, keys_file: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("memorygraph.servicers.gate.KEY_REFRESH_SECONDS", 0.0)
    server = start_inprocess(auth={"enabled": True, "api_keys_file": keys_file})
    keys_file.write_text("key-gamma\n")
    os.utime(keys_file, ns=(time.time_ns() + 10**9, time.time_ns() + 10**9))
    with grpc.insecure_channel(f"127.0.0.1:{server.port}") as channel:
        stub = MemoryGraphServiceStub(channel)
        stub.Health(pb.HealthRequest(), metadata=(("authorization", "Bearer key-gamma"),))
        with pytest.raises(grpc.RpcError) as info:
            stub.Health(pb.HealthRequest(), metadata=(("authorization", "Bearer key-alpha"),))
    assert info.value.code() == grpc.StatusCode.UNAUTHENTICATED


def test_auth_without_any_key_is_a_config_error(start_inprocess: Start, tmp_path: Path) -> None:
    empty = tmp_path / "empty"
    empty.write_text("# nothing\n")
    with pytest.raises(ConfigError, match="no API keys"):
        start_inprocess(auth={"enabled": True, "api_keys_file": empty})


def _secure_stub(
    server: RunningServer, ca: Path, client: tuple[Path, Path] | None = None
) -> tuple[grpc.Channel, MemoryGraphServiceStub]:
    credentials = grpc.ssl_channel_credentials(
        root_certificates=ca.read_bytes(),
        private_key=client[1].read_bytes() if client else None,
        certificate_chain=client[0].read_bytes() if client else None,
    )
    channel = grpc.secure_channel(f"127.0.0.1:{server.port}", credentials)
    return channel, graph_pb2_grpc.MemoryGraphServiceStub(channel)


@pytest.mark.one_process("two servers in one process cannot share a TLS port")
def test_tls_serves_trusted_clients_and_refuses_a_wrong_ca(
    start_inprocess: Start, tmp_path: Path
) -> None:
    ca, other = Authority(tmp_path, "ca"), Authority(tmp_path, "other-ca")
    issued = ca.issue("server", server=True)
    server = start_inprocess(tls={"cert_file": issued.cert, "key_file": issued.key})
    channel, stub = _secure_stub(server, ca.files.cert)
    with channel:
        assert stub.Health(pb.HealthRequest(), timeout=5).status == pb.HealthResponse.STATUS_SERVING
    channel, stub = _secure_stub(server, other.files.cert)
    with channel, pytest.raises(grpc.RpcError) as info:
        stub.Health(pb.HealthRequest(), timeout=5)
    assert info.value.code() == grpc.StatusCode.UNAVAILABLE
    with (
        grpc.insecure_channel(f"127.0.0.1:{server.port}") as plain,
        pytest.raises(grpc.RpcError),
    ):
        MemoryGraphServiceStub(plain).Health(pb.HealthRequest(), timeout=5)


@pytest.mark.one_process("two servers in one process cannot share a TLS port")
def test_mutual_tls_requires_a_client_certificate_from_the_ca(
    start_inprocess: Start, tmp_path: Path
) -> None:
    ca, other = Authority(tmp_path, "ca"), Authority(tmp_path, "other-ca")
    issued = ca.issue("server", server=True)
    server = start_inprocess(
        tls={"cert_file": issued.cert, "key_file": issued.key, "client_ca_file": ca.files.cert}
    )
    good = ca.issue("client", server=False, common_name="app")
    channel, stub = _secure_stub(server, ca.files.cert, (good.cert, good.key))
    with channel:
        stub.Health(pb.HealthRequest(), timeout=5)
    for client in (None, other.issue("stranger", server=False)):
        pair = (client.cert, client.key) if client else None
        channel, stub = _secure_stub(server, ca.files.cert, pair)
        with channel, pytest.raises(grpc.RpcError) as info:
            stub.Health(pb.HealthRequest(), timeout=5)
        assert info.value.code() == grpc.StatusCode.UNAVAILABLE


@pytest.mark.one_process("two servers in one process cannot share a TLS port")
def test_renewed_certificate_files_are_served_without_restart(
    start_inprocess: Start, tmp_path: Path
) -> None:
    old_ca, new_ca = Authority(tmp_path, "old-ca"), Authority(tmp_path, "new-ca")
    first = old_ca.issue("first", server=True)
    cert, key = tmp_path / "tls.crt", tmp_path / "tls.key"
    shutil.copy(first.cert, cert)
    shutil.copy(first.key, key)
    server = start_inprocess(tls={"cert_file": cert, "key_file": key})
    channel, stub = _secure_stub(server, old_ca.files.cert)
    with channel:
        stub.Health(pb.HealthRequest(), timeout=5)
    renewed = new_ca.issue("renewed", server=True)
    shutil.copy(renewed.cert, cert)
    shutil.copy(renewed.key, key)
    later = time.time_ns() + 10**9
    for path in (cert, key):
        os.utime(path, ns=(later, later))
    channel, stub = _secure_stub(server, new_ca.files.cert)
    with channel:
        stub.Health(pb.HealthRequest(), timeout=5)


@pytest.mark.one_process("two servers in one process cannot share a TLS port")
def test_command_line_speaks_mutual_tls(start_inprocess: Start, tmp_path: Path) -> None:
    """Global options before the command, or (as the archival CronJob passes them) after
    `archive run`; a certificate without its key is a usage error."""
    ca = Authority(tmp_path, "ca")
    issued = ca.issue("server", server=True)
    server = start_inprocess(
        tls={"cert_file": issued.cert, "key_file": issued.key, "client_ca_file": ca.files.cert}
    )
    client = ca.issue("client", server=False, common_name="archiver")
    address = f"127.0.0.1:{server.port}"
    tls = ["--ca-cert", str(ca.files.cert), "--client-cert", str(client.cert)]
    tls += ["--client-key", str(client.key)]
    assert cli_main(["--server", address, *tls, "health"]) == 0
    assert cli_main(["--server", address, "--ca-cert", str(ca.files.cert), "health"]) == 3
    assert (
        cli_main(
            [
                "--server",
                address,
                "--ca-cert",
                str(ca.files.cert),
                "--client-cert",
                str(client.cert),
                "health",
            ]
        )
        == 2
    )
    vault = "http://127.0.0.1:1"  # unreachable: the run gets as far as the destination check
    code = cli_main(
        ["archive", "run", "--server", address, *tls, "--older-than", "1h", "--vault-url", vault]
    )
    assert code == 1  # the server was reached over mutual TLS; the vault was not
