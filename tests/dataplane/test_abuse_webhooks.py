"""Webhooks that answer a byte at a time or without end, under concurrent writes: every write
ends within the plugin's timeout, the server's memory stays within a stated bound, and health
keeps answering meanwhile. The server runs as a process of its own, so that its peak resident
memory (VmHWM) is its own."""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import grpc
import pytest
import yaml
from memorygraph.v1 import graph_pb2 as pb
from memorygraph.v1.graph_pb2_grpc import MemoryGraphServiceStub

from .abuse_support import Prober, memory
from .conftest import ServerProcess
from .plugin_support import (
    LOOPBACK,
    RawWebhook,
    Respond,
    dripping,
    flooding,
    webhook_plugin,
    write_plugins,
)

CALLERS = 16
CALLS_EACH = 4
TIMEOUT = 1.0
# What the server may hold at its peak: its own footprint (about 80 MiB here) and, at most,
# CALLERS answers of plugins_max_answer_bytes (2 MiB) in flight.
PEAK_BOUND_BYTES = 200 << 20


def _write(address: str, session_id: str) -> list[tuple[grpc.StatusCode, float]]:
    """CALLS_EACH prompts, one after the other: how each ended and how long it took."""
    outcomes = []
    with grpc.insecure_channel(address) as channel:
        stub = MemoryGraphServiceStub(channel)
        for _ in range(CALLS_EACH):
            started = time.monotonic()
            try:
                stub.AddPrompt(pb.AddPromptRequest(session_id=session_id, content="q"), timeout=30)
                code = grpc.StatusCode.OK
            except grpc.RpcError as exc:
                code = exc.code()
            outcomes.append((code, time.monotonic() - started))
    return outcomes


@pytest.mark.slow
@pytest.mark.parametrize(
    "respond",
    [dripping("headers"), dripping("body"), flooding(declare=False), flooding(declare=True)],
    ids=["drip-headers", "drip-body", "flood", "flood-declared"],
)
def test_abusive_webhooks_cost_bounded_time_and_memory_and_health_keeps_answering(
    tmp_path: Path, respond: Respond
) -> None:
    service = RawWebhook(respond)
    plugin = webhook_plugin(
        "abusive",
        service.url,
        ["before_create_node"],
        timeout_seconds=TIMEOUT,
        failure_policy="Fail",
    )
    plugins = write_plugins(tmp_path / "plugins.yaml", plugin)
    config = tmp_path / "memorygraph.yaml"
    config.write_text(yaml.safe_dump({"plugins_file": str(plugins), **LOOPBACK}))
    server = ServerProcess(tmp_path / "data", "--config", str(config)).start()
    try:
        with grpc.insecure_channel(server.address) as channel:
            session = MemoryGraphServiceStub(channel).CreateSession(pb.CreateSessionRequest())
        probing = Prober(server.address, every=0.05, timeout=2, rpc=True)
        with probing as prober, ThreadPoolExecutor(CALLERS) as callers:
            writes = callers.map(lambda _: _write(server.address, session.id), range(CALLERS))
            outcomes = [outcome for each in writes for outcome in each]
        assert server.proc is not None
        peak = memory(server.proc.pid)["VmHWM"]
    finally:
        service.stop()
        server.stop()
    slowest = max(seconds for _, seconds in outcomes)
    print(
        f"{len(outcomes)} writes, slowest {slowest:.2f} s; slowest health probe "
        f"{prober.slowest * 1000:.0f} ms; server peak {peak >> 20} MiB"
    )
    assert {code for code, _ in outcomes} == {grpc.StatusCode.UNAVAILABLE}
    assert slowest < TIMEOUT + 0.75, slowest
    assert service.requests == CALLERS * CALLS_EACH
    assert prober.failures == [] and prober.slowest < 1.0, (prober.failures, prober.slowest)
    assert peak < PEAK_BOUND_BYTES, f"peak resident memory {peak >> 20} MiB"
