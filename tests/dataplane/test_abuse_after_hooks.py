"""Webhook after-hooks that a service takes its time with: the calls waiting for delivery are
bounded in bytes, and shutting down with a full queue takes the grace period, not as long as
the deliveries would; what is left undelivered is dropped, counted and logged once."""

from __future__ import annotations

import signal
import subprocess
import time
from pathlib import Path

import grpc
import pytest
from memorygraph.v1 import graph_pb2 as pb
from memorygraph.v1.graph_pb2_grpc import MemoryGraphServiceStub
from prometheus_client import REGISTRY

from .abuse_support import MiB
from .conftest import ServerProcess
from .plugin_support import LOOPBACK, Start, Webhook, connect, webhook_plugin, write_plugins


def _dropped(plugin: str) -> float:
    labels = {"plugin": plugin, "hook": "after_create_node", "outcome": "dropped"}
    return REGISTRY.get_sample_value("memorygraph_plugin_executions_total", labels) or 0.0


def _audit(path: Path, url: str) -> Path:
    return write_plugins(
        path, webhook_plugin("audit", url, ["after_create_node"], timeout_seconds=20)
    )


@pytest.mark.one_process
def test_after_hooks_waiting_for_a_slow_service_are_bounded_in_bytes(
    start_inprocess: Start, webhook: Webhook, tmp_path: Path
) -> None:
    webhook.delay = 10  # no delivery finishes while the test writes
    server = start_inprocess(
        plugins_file=_audit(tmp_path / "plugins.yaml", webhook.url),
        plugin_after_queue_bytes=4 * MiB,
        **LOOPBACK,
    )
    assert server.plugins is not None
    budget = server.plugins.after_budget
    stub = connect(server)
    session = stub.CreateSession(pb.CreateSessionRequest(), timeout=5)
    before = _dropped("audit")
    held = []
    for i in range(40):  # 20 MiB of content, each prompt an after-hook call of its own
        content = f"{i:08d}" + "x" * ((512 << 10) - 8)
        stub.AddPrompt(pb.AddPromptRequest(session_id=session.id, content=content), timeout=10)
        held.append(budget.held)
    assert max(held) <= 4 * MiB
    queued = 40 - (_dropped("audit") - before)
    assert 4 <= queued <= 8  # what fits in 4 MiB; the rest was dropped and counted

    started = time.monotonic()
    server.stop(grace=1)
    assert time.monotonic() - started < 5  # not the tens of seconds the deliveries would take
    assert _dropped("audit") - before + len(webhook.calls) >= 40
    assert budget.held <= 4 * MiB


@pytest.mark.slow
def test_sigterm_with_a_full_after_hook_queue_exits_within_the_grace_period(
    tmp_path: Path, webhook: Webhook
) -> None:
    webhook.delay = 30  # the service answers nothing in time
    config = tmp_path / "config.yaml"
    plugins = _audit(tmp_path / "plugins.yaml", webhook.url)
    config.write_text(
        f"durability: fast\nshutdown_grace_seconds: 2\nplugins_file: {plugins}\n"
        "plugins_allowed_networks: [127.0.0.1/32]\n"
    )
    server = ServerProcess(tmp_path / "data", "--config", str(config)).start()
    assert server.proc is not None
    try:
        with grpc.insecure_channel(server.address) as channel:
            stub = MemoryGraphServiceStub(channel)
            session = stub.CreateSession(pb.CreateSessionRequest(), timeout=5)
            for i in range(300):
                request = pb.AddPromptRequest(session_id=session.id, content=f"q{i}")
                stub.AddPrompt(request, timeout=5)
        started = time.monotonic()
        server.proc.send_signal(signal.SIGTERM)
        code = server.proc.wait(timeout=20)
        elapsed = time.monotonic() - started
    except subprocess.TimeoutExpired:
        server.kill()
        pytest.fail("the server did not exit within 20 s of SIGTERM")
    server.proc = None
    assert code == 0
    assert elapsed < 8, f"exiting took {elapsed:.1f}s"
    lines = [line for line in server.output().splitlines() if "after-hook deliveries" in line]
    assert len(lines) == 1 and "dropped" in lines[0]
    dropped = int(lines[0].split("dropped ", 1)[1].split()[0])
    assert 250 <= dropped <= 296  # all but the four under way and a few delivered
