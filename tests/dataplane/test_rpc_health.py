"""Health checks (the service's own and the standard one), server reflection and GetMetrics."""

from __future__ import annotations

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc
from memorygraph.server import RunningServer
from memorygraph.store.keys import SCHEMA_VERSION
from memorygraph.v1 import graph_pb2 as pb

from .rpc_support import Stub, turn


def test_health_reflection_and_ops_rpcs(stub: Stub, inprocess_server: RunningServer) -> None:
    health = stub.Health(pb.HealthRequest())
    assert health.status == pb.HealthResponse.STATUS_SERVING
    assert health.schema_version == SCHEMA_VERSION and health.durability == "durable"
    assert health.shards == 64
    with grpc.insecure_channel(f"127.0.0.1:{inprocess_server.port}") as channel:
        standard = health_pb2_grpc.HealthStub(channel).Check(
            health_pb2.HealthCheckRequest(service="memorygraph.v1.MemoryGraphService")
        )
        assert standard.status == health_pb2.HealthCheckResponse.SERVING
        reflection = reflection_pb2_grpc.ServerReflectionStub(channel)
        replies = reflection.ServerReflectionInfo(
            iter([reflection_pb2.ServerReflectionRequest(list_services="")])
        )
        names = {s.name for r in replies for s in r.list_services_response.service}
    assert "memorygraph.v1.MemoryGraphService" in names
    assert "grpc.health.v1.Health" in names
    turn(stub)
    metrics = stub.GetMetrics(pb.GetMetricsRequest())
    assert metrics.requests_by_method["AddPrompt"] == 1
    assert metrics.nodes_by_kind["tool_invocation"] == 1 and metrics.store_size_bytes > 0
