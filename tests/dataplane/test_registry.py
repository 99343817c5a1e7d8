"""Usage reporting to a real LLM-Registry service on 127.0.0.1: nothing lost to an outage,
each report counted once, and the write path never waits for the registry."""

from __future__ import annotations

import asyncio
import contextlib
import json
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import grpc
import pytest
from memorygraph.client import Client
from memorygraph.errors import FailedPrecondition
from memorygraph.integrations.registry import RegistryClient, RegistryError
from memorygraph.integrations.reporter import CircuitBreaker
from memorygraph.server import RunningServer
from memorygraph.v1 import graph_pb2 as pb
from memorygraph.v1.graph_pb2_grpc import MemoryGraphServiceStub

from .conftest import free_port

Start = Callable[..., RunningServer]
TOKEN = "registry-token"


@dataclass
class Registry:
    """The registry's documented REST contract, deduplicating by Idempotency-Key."""

    port: int
    accepted: dict[str, dict[str, Any]] = field(default_factory=dict)
    received: Counter[str] = field(default_factory=Counter)
    paths: list[str] = field(default_factory=list)
    delay: float = 0.0
    model_lookups: int = 0
    padding: int = 0  # blanks added to every answer
    server: ThreadingHTTPServer | None = None

    def start(self) -> None:
        state = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def _reply(self, status: int, body: dict[str, Any]) -> None:
                raw = json.dumps(body).encode() + b" " * state.padding
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(raw)))
                self.end_headers()
                with contextlib.suppress(BrokenPipeError, ConnectionResetError):
                    self.wfile.write(raw)  # unless the client stopped reading

            def do_GET(self) -> None:
                if self.path == "/health":
                    self._reply(200, {"status": "ok"})
                elif self.path.startswith("/api/v1/models/"):
                    state.model_lookups += 1
                    self._reply(200, {"id": self.path.rsplit("/", 1)[1], "context": 128000})
                else:
                    self._reply(404, {})

            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                if self.headers.get("Authorization") != f"Bearer {TOKEN}":
                    self._reply(401, {})
                    return
                if state.delay:
                    time.sleep(state.delay)
                key = self.headers["Idempotency-Key"]
                state.received[key] += 1
                state.paths.append(self.path)
                if key in state.accepted:
                    self._reply(409, {"error": "already recorded"})
                    return
                state.accepted[key] = body
                self._reply(201, {})

            def log_message(self, format: str, *args: Any) -> None:
                return

        self.server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self.server.daemon_threads = True
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def stop(self) -> None:
        if self.server is not None:
            self.server.shutdown()
            self.server.server_close()


@pytest.fixture
def registry() -> Iterator[Registry]:
    state = Registry(free_port())
    yield state
    state.stop()


def start_reporting(start: Start, registry: Registry, tmp_path: Path, **more: Any) -> RunningServer:
    token = tmp_path / "registry-token"
    token.write_text(TOKEN + "\n")
    return start(
        registry={
            "url": f"http://127.0.0.1:{registry.port}",
            "token_file": token,
            "timeout_seconds": 1,
            "breaker_threshold": 2,
            "breaker_cooldown_seconds": 0.5,
        },
        **more,
    )


def record_turns(stub: MemoryGraphServiceStub, turns: int) -> tuple[str, list[str]]:
    session = stub.CreateSession(pb.CreateSessionRequest(model="m1", metadata={"team": "x"}))
    responses = []
    for i in range(turns):
        prompt = stub.AddPrompt(pb.AddPromptRequest(session_id=session.id, content=f"q{i}"))
        responses.append(
            stub.AddResponse(
                pb.AddResponseRequest(
                    prompt_id=prompt.id,
                    content="a",
                    model="m1",
                    token_usage=pb.TokenUsage(prompt_tokens=i, completion_tokens=1),
                )
            ).id
        )
    stub.CloseSession(pb.CloseSessionRequest(session_id=session.id))
    return session.id, responses


def wait_for(condition: Callable[[], bool], timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.05)


@pytest.mark.one_process
def test_an_outage_loses_no_report_and_each_counts_once(
    start_inprocess: Start, registry: Registry, tmp_path: Path
) -> None:
    server = start_reporting(start_inprocess, registry, tmp_path, event_retention_max_events=5)
    reporter = server.reporter
    assert reporter is not None
    stub = MemoryGraphServiceStub(grpc.insecure_channel(f"127.0.0.1:{server.port}"))
    session_id, responses = record_turns(stub, 20)  # the registry is down all along
    wait_for(lambda: reporter.breaker.state != "closed")
    assert reporter.depth() > 0
    # Retention would keep only 5 events, but never the ones still to be reported.
    oldest = server.store.events.oldest_sequence()
    server.retention.trim_once()
    assert server.store.events.oldest_sequence() == oldest

    registry.start()
    wait_for(lambda: reporter.depth() == 0 and reporter.breaker.state == "closed")
    expected = {f"{session_id}:registered", f"{session_id}:closed"} | {
        f"{r}:usage" for r in responses
    }
    assert set(registry.accepted) == expected
    usage = {k: v for k, v in registry.accepted.items() if k.endswith(":usage")}
    assert sorted(v["prompt_tokens"] for v in usage.values()) == list(range(20))
    assert all(v["session_id"] == session_id and v["model"] == "m1" for v in usage.values())
    assert registry.accepted[f"{session_id}:registered"]["tags"] == ["team"]
    assert f"/api/v1/sessions/{session_id}/status" in registry.paths


def test_a_turn_recorded_in_one_call_reports_its_usage(
    start_inprocess: Start, registry: Registry, tmp_path: Path
) -> None:
    registry.start()
    server = start_reporting(start_inprocess, registry, tmp_path)
    stub = MemoryGraphServiceStub(grpc.insecure_channel(f"127.0.0.1:{server.port}"))
    session = stub.CreateSession(pb.CreateSessionRequest(model="m1"))
    turn = stub.RecordTurn(
        pb.RecordTurnRequest(
            prompt=pb.AddPromptRequest(session_id=session.id, content="q"),
            response=pb.AddResponseRequest(
                content="a",
                model="m1",
                token_usage=pb.TokenUsage(prompt_tokens=5, completion_tokens=2),
            ),
        )
    )
    wait_for(lambda: f"{turn.response.id}:usage" in registry.accepted)
    usage = registry.accepted[f"{turn.response.id}:usage"]
    assert (usage["prompt_tokens"], usage["session_id"], usage["model"]) == (5, session.id, "m1")


@pytest.mark.one_process
def test_redelivery_after_a_restart_is_deduplicated(
    start_inprocess: Start, registry: Registry, tmp_path: Path
) -> None:
    registry.start()
    server = start_reporting(start_inprocess, registry, tmp_path)
    stub = MemoryGraphServiceStub(grpc.insecure_channel(f"127.0.0.1:{server.port}"))
    record_turns(stub, 3)
    assert server.reporter is not None
    reporter = server.reporter
    wait_for(lambda: reporter.depth() == 0)
    server.stop(grace=1)
    # Forget the delivery cursor, as a crash before it was written would: everything goes again.
    again = start_reporting(start_inprocess, registry, tmp_path)
    assert again.reporter is not None
    again.reporter.cursor = 0
    again.reporter.wake()
    wait_for(lambda: sum(registry.received.values()) >= 2 * 5)
    assert len(registry.accepted) == 5  # registered, 3 usage, closed: each counted once
    assert max(registry.received.values()) == 2


def test_writes_never_wait_for_a_slow_registry(
    start_inprocess: Start, registry: Registry, tmp_path: Path
) -> None:
    registry.delay = 3
    registry.start()
    server = start_reporting(start_inprocess, registry, tmp_path)
    stub = MemoryGraphServiceStub(grpc.insecure_channel(f"127.0.0.1:{server.port}"))
    started = time.monotonic()
    record_turns(stub, 10)
    assert time.monotonic() - started < 2.5


def test_circuit_breaker_opens_cools_down_and_closes() -> None:
    now = [0.0]
    breaker = CircuitBreaker(threshold=2, cooldown=10, clock=lambda: now[0])
    breaker.failed()
    assert breaker.allows()
    breaker.failed()
    assert breaker.state == "open" and not breaker.allows()
    now[0] = 10.0
    assert breaker.state == "half-open" and breaker.allows()
    breaker.failed()  # the trial failed: open again
    assert breaker.state == "open"
    now[0] = 20.0
    breaker.succeeded()
    assert breaker.state == "closed"


@pytest.mark.one_process
def test_archival_waits_for_undelivered_reports_and_is_reported(
    start_inprocess: Start, registry: Registry, tmp_path: Path
) -> None:
    server = start_reporting(start_inprocess, registry, tmp_path)
    reporter = server.reporter
    assert reporter is not None
    with Client(f"127.0.0.1:{server.port}") as mg:
        session_id, _ = record_turns(mg.stub, 2)  # the registry is down
        data, summary = mg.export_session(session_id)
        with pytest.raises(FailedPrecondition, match="LLM-Registry has not received"):
            mg.archive_session(session_id, summary.content_sha256)
        mg.get_session(session_id)
        registry.start()
        wait_for(lambda: reporter.depth() == 0 and reporter.breaker.state == "closed")
        mg.archive_session(session_id, summary.content_sha256)
        wait_for(lambda: any(k.startswith(f"{session_id}:archived:") for k in registry.accepted))
        mg.restore_session(data)
        # Restored: back to the state it was archived in (closed), as a report of its own.
        wait_for(lambda: any(k.startswith(f"{session_id}:closed:") for k in registry.accepted))
    statuses = [v["status"] for k, v in registry.accepted.items() if "status" in v]
    assert statuses[-2:] == ["archived", "closed"]


def test_model_metadata_is_cached_for_its_ttl(registry: Registry) -> None:
    registry.start()

    async def scenario() -> list[dict[str, Any]]:
        client = RegistryClient(f"http://127.0.0.1:{registry.port}", model_ttl=0.5)
        try:
            first = await client.model("m1")
            second = await client.model("m1")
            assert registry.model_lookups == 1
            await asyncio.sleep(0.6)
            third = await client.model("m1")
            return [first, second, third]
        finally:
            await client.close()

    results = asyncio.run(scenario())
    assert registry.model_lookups == 2
    assert results[0] == results[2] == {"id": "m1", "context": 128000}


def test_registry_answers_are_read_to_a_bound_and_a_report_stands_on_its_status(
    registry: Registry, tmp_path: Path
) -> None:
    registry.padding = 4 << 20
    registry.start()
    token = tmp_path / "token"
    token.write_text(TOKEN)

    async def scenario() -> None:
        client = RegistryClient(f"http://127.0.0.1:{registry.port}", token_file=token)
        try:
            with pytest.raises(RegistryError) as info:
                await client.model("m1")
            assert info.value.permanent
            assert str(info.value) == (
                "GET /api/v1/models/m1: the answer is 4194335 bytes, more than the 1048576 accepted"
            )
            await client.report_usage({"response_id": "r-1", "prompt_tokens": 1}, key="r-1:usage")
        finally:
            await client.close()

    asyncio.run(scenario())
    assert "r-1:usage" in registry.accepted
