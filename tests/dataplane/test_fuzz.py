"""Malformed bytes and generated messages never crash the server or leak its internals."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import grpc
import pytest
from google.protobuf.descriptor import Descriptor, FieldDescriptor
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from memorygraph.config import load_config
from memorygraph.server import RunningServer, start_server
from memorygraph.v1 import graph_pb2 as pb

SERVICE = pb.DESCRIPTOR.services_by_name["MemoryGraphService"]
UNARY = sorted(m.name for m in SERVICE.methods if not m.client_streaming and not m.server_streaming)
# A caller's mistake may fail in many ways, but never as a server fault.
SERVER_FAULTS = {grpc.StatusCode.INTERNAL, grpc.StatusCode.UNKNOWN, grpc.StatusCode.UNAVAILABLE}
LEAKS = ("Traceback", 'File "', "/memorygraph/", ".py", "Exception")


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    data = tmp_path_factory.mktemp("fuzz") / "data"
    running = start_server(
        load_config(
            None,
            {"data_dir": Path(data), "host": "127.0.0.1", "port": 0, "metrics_port": 0},
            environ={},
        )
    )
    yield running
    running.stop(grace=1)


@pytest.fixture(scope="module")
def channel(server: RunningServer) -> Iterator[grpc.Channel]:
    with grpc.insecure_channel(f"127.0.0.1:{server.port}") as ch:
        yield ch


def raw_call(channel: grpc.Channel, method: str, payload: bytes) -> grpc.RpcError | None:
    call = channel.unary_unary(f"/memorygraph.v1.MemoryGraphService/{method}")
    try:
        call(payload, timeout=10)
    except grpc.RpcError as exc:
        return exc
    return None


def assert_no_fault(error: grpc.RpcError | None, what: str) -> None:
    if error is None:
        return
    assert error.code() not in SERVER_FAULTS, f"{what}: {error.code()} {error.details()}"
    details = error.details() or ""
    assert not any(leak in details for leak in LEAKS), f"{what} leaked: {details}"


@settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(method=st.sampled_from(UNARY), payload=st.binary(max_size=200))
def test_random_bytes_are_refused_cleanly(
    channel: grpc.Channel, method: str, payload: bytes
) -> None:
    error = raw_call(channel, method, payload)
    if error is not None and error.code() == grpc.StatusCode.INTERNAL:
        # gRPC's own answer to bytes that are not a protobuf message: fine, as long as it
        # says nothing about the server.
        assert error.details() in ("Exception deserializing request!",), error.details()
        return
    assert_no_fault(error, f"{method}({payload!r})")


_IDS = st.sampled_from(["", "not-an-id", "0190a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5b", "$0", "\x00"])


def message_strategy(descriptor: Descriptor, depth: int = 0) -> st.SearchStrategy[dict[str, Any]]:
    """Field values for any message type: ids, text, odd integers, unknown enum numbers."""
    fields: dict[str, st.SearchStrategy[Any]] = {}
    for field in descriptor.fields:
        value: st.SearchStrategy[Any]
        if field.message_type is not None and field.message_type.GetOptions().map_entry:
            value = st.dictionaries(st.text(max_size=8), st.text(max_size=16), max_size=3)
        elif field.message_type is not None:
            if depth >= 2 or field.message_type.full_name.startswith("google."):
                continue
            value = message_strategy(field.message_type, depth + 1)
        elif field.type == FieldDescriptor.TYPE_STRING:
            value = (
                _IDS | st.text(max_size=40) if field.name.endswith("_id") else st.text(max_size=40)
            )
        elif field.type == FieldDescriptor.TYPE_BOOL:
            value = st.booleans()
        elif field.type == FieldDescriptor.TYPE_ENUM:
            value = st.integers(-3, 40)
        elif field.type in (FieldDescriptor.TYPE_INT32, FieldDescriptor.TYPE_INT64):
            value = st.integers(-(2**31), 2**31 - 1)
        elif field.type == FieldDescriptor.TYPE_UINT64:
            value = st.integers(0, 2**64 - 1)
        else:
            continue
        if field.is_repeated and not (
            field.message_type is not None and field.message_type.GetOptions().map_entry
        ):
            value = st.lists(value, max_size=3)
        fields[field.name] = value
    return st.fixed_dictionaries({}, optional=fields)


def build(descriptor: Descriptor, values: dict[str, Any]) -> Any:
    message = getattr(pb, descriptor.name)() if descriptor.containing_type is None else None
    assert message is not None
    _fill(message, values)
    return message


def _fill(message: Any, values: dict[str, Any]) -> None:
    for name, value in values.items():
        field = message.DESCRIPTOR.fields_by_name[name]
        if field.message_type is not None and field.message_type.GetOptions().map_entry:
            getattr(message, name).update(value)
        elif field.message_type is not None:
            if field.is_repeated:
                for item in value:
                    _fill(getattr(message, name).add(), item)
            else:
                _fill(getattr(message, name), value)
        elif field.is_repeated:
            getattr(message, name).extend(value)
        else:
            setattr(message, name, value)


@pytest.mark.parametrize("method", UNARY)
def test_generated_requests_never_fault(channel: grpc.Channel, method: str) -> None:
    descriptor = SERVICE.methods_by_name[method].input_type
    call = channel.unary_unary(
        f"/memorygraph.v1.MemoryGraphService/{method}",
        request_serializer=lambda m: m.SerializeToString(),
    )

    @settings(max_examples=40, deadline=None)
    @given(values=message_strategy(descriptor))
    def check(values: dict[str, Any]) -> None:
        try:
            call(build(descriptor, values), timeout=10)
        except grpc.RpcError as exc:
            assert_no_fault(exc, f"{method}({values!r})")

    check()
