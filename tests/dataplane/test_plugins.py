"""Plugins end to end: hooks dispatched, rejections that leave no trace, transformations that are
what gets stored and streamed, a real webhook service, and reloads under load."""

from __future__ import annotations

import itertools
import json
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import grpc
import pytest
import yaml
from memorygraph.model import NodeKind
from memorygraph.plugins.schema import Hook
from memorygraph.server import RunningServer
from memorygraph.v1 import graph_pb2 as pb
from memorygraph.v1.graph_pb2_grpc import MemoryGraphServiceStub

Start = Callable[..., RunningServer]


@dataclass
class Webhook:
    """A real HTTP plugin service on 127.0.0.1 whose answers the test chooses."""

    answer: Callable[[dict[str, Any]], tuple[int, Any]] = lambda body: (200, {"allow": True})
    calls: list[dict[str, Any]] = field(default_factory=list)
    headers: list[dict[str, str]] = field(default_factory=list)
    delay: float = 0.0
    server: ThreadingHTTPServer | None = None

    @property
    def url(self) -> str:
        assert self.server is not None
        return f"http://127.0.0.1:{self.server.server_address[1]}/hook"

    def hooks_seen(self) -> set[str]:
        return {c["call"]["hook"] for c in list(self.calls)}


@pytest.fixture
def webhook() -> Iterator[Webhook]:
    state = Webhook()

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_POST(self) -> None:
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            state.calls.append(body)
            state.headers.append(dict(self.headers))
            if state.delay:
                time.sleep(state.delay)
            status, answer = state.answer(body)
            raw = json.dumps(answer).encode() if not isinstance(answer, bytes) else answer
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(raw)))
            self.end_headers()
            self.wfile.write(raw)

        def log_message(self, format: str, *args: Any) -> None:
            return

    state.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    state.server.daemon_threads = True
    thread = threading.Thread(target=state.server.serve_forever, daemon=True)
    thread.start()
    yield state
    state.server.shutdown()
    state.server.server_close()


def write_plugins(path: Path, *plugins: dict[str, Any]) -> Path:
    path.write_text(yaml.safe_dump({"version": 1, "plugins": list(plugins)}))
    return path


def connect(server: RunningServer) -> MemoryGraphServiceStub:
    return MemoryGraphServiceStub(grpc.insecure_channel(f"127.0.0.1:{server.port}"))


def wait_for(condition: Callable[[], bool], timeout: float = 10) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.02)


def test_every_hook_point_is_dispatched(
    start_inprocess: Start, webhook: Webhook, tmp_path: Path
) -> None:
    plugins = write_plugins(
        tmp_path / "plugins.yaml",
        {
            "name": "recorder",
            "type": "webhook",
            "hooks": [h.value for h in Hook],
            "config": {"url": webhook.url},
        },
    )
    server = start_inprocess(plugins_file=plugins)
    stub = connect(server)
    session = stub.CreateSession(pb.CreateSessionRequest(title="t"))
    prompt = stub.AddPrompt(pb.AddPromptRequest(session_id=session.id, content="q"))
    response = stub.AddResponse(pb.AddResponseRequest(prompt_id=prompt.id, content="a"))
    stub.AddToolInvocation(pb.AddToolInvocationRequest(response_id=response.id, tool_name="t"))
    agent = stub.CreateNode(pb.CreateNodeRequest(kind=pb.NODE_KIND_AGENT, content="helper"))
    stub.UpdateNode(pb.UpdateNodeRequest(node_id=agent.id, content="helper v2"))
    stub.CreateEdge(
        pb.CreateEdgeRequest(
            source_id=response.id, target_id=agent.id, kind=pb.EDGE_KIND_HANDLED_BY
        )
    )
    stub.DeleteEdge(
        pb.DeleteEdgeRequest(
            source_id=response.id, target_id=agent.id, kind=pb.EDGE_KIND_HANDLED_BY
        )
    )
    stub.DeleteNode(pb.DeleteNodeRequest(node_id=agent.id))
    stub.CreateTemplate(
        pb.CreateTemplateRequest(
            name="t", content="hi {{who}}", variables=[pb.TemplateVariable(name="who")]
        )
    )
    stub.InstantiateTemplate(
        pb.InstantiateTemplateRequest(name="t", variables={"who": "x"}, session_id=session.id)
    )
    stub.Query(pb.QueryRequest(filter=pb.QueryFilter(session_id=session.id)))
    list(stub.StreamQuery(pb.StreamQueryRequest(filter=pb.QueryFilter(session_id=session.id))))
    list(
        stub.Ingest(
            iter(
                [
                    pb.IngestBatch(
                        items=[
                            pb.IngestItem(
                                prompt=pb.AddPromptRequest(session_id=session.id, content="bulk")
                            )
                        ]
                    )
                ]
            )
        )
    )
    stub.CloseSession(pb.CloseSessionRequest(session_id=session.id))
    # Archival fires before_archive at the export for it and after_archive at the removal.
    chunks = list(
        stub.ExportSession(pb.ExportSessionRequest(session_id=session.id, for_archive=True))
    )
    stub.ArchiveSession(
        pb.ArchiveSessionRequest(
            session_id=session.id, content_sha256=chunks[-1].summary.content_sha256
        )
    )
    other = stub.CreateSession(pb.CreateSessionRequest(title="t2"))
    stub.DeleteSession(pb.DeleteSessionRequest(session_id=other.id))

    wait_for(lambda: webhook.hooks_seen() == {h.value for h in Hook})
    created = [c["call"] for c in webhook.calls if c["call"]["hook"] == "before_create_node"]
    assert {c["subject"] for c in created} >= {"prompt", "response", "tool_invocation", "agent"}
    assert all(c["apiVersion"] == "memorygraph.io/plugins/v1" for c in webhook.calls)


def test_rejection_names_the_plugin_and_leaves_no_trace(
    start_inprocess: Start, tmp_path: Path
) -> None:
    plugins = write_plugins(
        tmp_path / "plugins.yaml",
        {
            "name": "no-secrets",
            "type": "validator",
            "config": {"deny_patterns": ["(?i)password"], "max_content_length": 50},
        },
    )
    server = start_inprocess(plugins_file=plugins)
    stub = connect(server)
    session = stub.CreateSession(pb.CreateSessionRequest())
    counters, sequence = server.store.counts(), server.store.events.last_sequence
    for content, reason in (("my Password is hunter2", "denied pattern"), ("x" * 51, "at most 50")):
        with pytest.raises(grpc.RpcError) as info:
            stub.AddPrompt(pb.AddPromptRequest(session_id=session.id, content=content))
        assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert "rejected by plugin 'no-secrets'" in info.value.details()
        assert reason in info.value.details()
    assert server.store.counts() == counters
    assert server.store.events.last_sequence == sequence
    stub.AddPrompt(pb.AddPromptRequest(session_id=session.id, content="fine"))


def test_transformation_is_what_gets_stored_and_streamed(
    start_inprocess: Start, tmp_path: Path
) -> None:
    plugins = write_plugins(
        tmp_path / "plugins.yaml",
        {"name": "pii", "type": "redactor", "order": 1},
        {"name": "facts", "type": "enricher", "order": 2},
    )
    server = start_inprocess(plugins_file=plugins)
    stub = connect(server)
    session = stub.CreateSession(pb.CreateSessionRequest())
    stream = stub.StreamEvents(pb.StreamEventsRequest(session_id=session.id, from_sequence=1))
    text = "mail ada@example.com, card 4111 1111 1111 1111, key AKIAABCDEFGHIJKLMNOP"
    prompt = stub.AddPrompt(
        pb.AddPromptRequest(
            session_id=session.id, content=text, metadata={"from": "ada@example.com"}
        )
    )
    expected = "mail [redacted], card [redacted], key [redacted]"
    assert prompt.content == expected
    stored = stub.GetNode(pb.GetNodeRequest(node_id=prompt.id))
    assert stored.content == expected and stored.metadata["from"] == "[redacted]"
    assert stored.metadata["mg.chars"] == str(len(expected))
    assert stored.metadata["mg.approx_tokens"] == str((len(expected.encode()) + 3) // 4)
    events = list(itertools.islice(stream, 2))
    stream.cancel()
    assert events[1].node.content == expected


def test_webhook_allow_deny_patch_and_bearer_token(
    start_inprocess: Start, webhook: Webhook, tmp_path: Path
) -> None:
    token = tmp_path / "token"
    token.write_text("s3cret\n")

    def answer(body: dict[str, Any]) -> tuple[int, Any]:
        content = body["call"]["content"]
        if "forbidden" in content:
            return 200, {"allow": False, "reason": "topic not allowed"}
        if "shout" in content:
            return 200, {
                "allow": True,
                "patch": {"content": content.upper(), "metadata": {"patched": "yes"}},
            }
        return 200, {"allow": True}

    webhook.answer = answer
    plugins = write_plugins(
        tmp_path / "plugins.yaml",
        {
            "name": "policy",
            "type": "webhook",
            "hooks": ["before_create_node"],
            "config": {"url": webhook.url, "token_file": str(token)},
        },
    )
    stub = connect(start_inprocess(plugins_file=plugins))
    session = stub.CreateSession(pb.CreateSessionRequest())
    ok = stub.AddPrompt(pb.AddPromptRequest(session_id=session.id, content="hello"))
    assert ok.content == "hello"
    patched = stub.AddPrompt(pb.AddPromptRequest(session_id=session.id, content="shout it"))
    assert patched.content == "SHOUT IT" and dict(patched.metadata) == {"patched": "yes"}
    with pytest.raises(grpc.RpcError) as info:
        stub.AddPrompt(pb.AddPromptRequest(session_id=session.id, content="forbidden topic"))
    assert info.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert info.value.details() == "rejected by plugin 'policy': topic not allowed"
    assert {h["Authorization"] for h in webhook.headers} == {"Bearer s3cret"}
    # One pooled connection serves the calls (HTTP keep-alive).
    assert {h.get("Connection", "keep-alive").lower() for h in webhook.headers} == {"keep-alive"}


@pytest.mark.parametrize("policy", ["Fail", "Ignore"])
def test_hanging_webhook_is_cut_off_and_the_server_stays_responsive(
    start_inprocess: Start, webhook: Webhook, tmp_path: Path, policy: str
) -> None:
    webhook.delay = 5
    plugins = write_plugins(
        tmp_path / "plugins.yaml",
        {
            "name": "slow",
            "type": "webhook",
            "hooks": ["before_create_node"],
            "timeout_seconds": 0.3,
            "failure_policy": policy,
            "config": {"url": webhook.url},
        },
    )
    stub = connect(start_inprocess(plugins_file=plugins))
    session = stub.CreateSession(pb.CreateSessionRequest())
    healthy: list[float] = []

    def probe() -> None:
        started = time.monotonic()
        stub.Health(pb.HealthRequest(), timeout=2)
        healthy.append(time.monotonic() - started)

    started = time.monotonic()
    prober = threading.Thread(target=probe)
    prober.start()
    if policy == "Fail":
        with pytest.raises(grpc.RpcError) as info:
            stub.AddPrompt(pb.AddPromptRequest(session_id=session.id, content="q"))
        assert info.value.code() == grpc.StatusCode.UNAVAILABLE
        assert "'slow'" in info.value.details() and "in time" in info.value.details()
    else:
        assert stub.AddPrompt(pb.AddPromptRequest(session_id=session.id, content="q")).id
    assert time.monotonic() - started < 2.5
    prober.join()
    assert healthy and healthy[0] < 1


@pytest.mark.parametrize(
    "answer",
    [(500, {"error": "boom"}), (200, b"not json"), (200, {"allowed": "yes"})],
)
def test_crashing_or_malformed_webhook_follows_the_failure_policy(
    start_inprocess: Start, webhook: Webhook, tmp_path: Path, answer: tuple[int, Any]
) -> None:
    webhook.answer = lambda body: answer
    plugins = write_plugins(
        tmp_path / "plugins.yaml",
        {
            "name": "strict",
            "type": "webhook",
            "hooks": ["before_create_session"],
            "failure_policy": "Fail",
            "config": {"url": webhook.url},
        },
        {
            "name": "lenient",
            "type": "webhook",
            "hooks": ["before_create_node"],
            "failure_policy": "Ignore",
            "config": {"url": webhook.url},
        },
    )
    server = start_inprocess(plugins_file=plugins)
    stub = connect(server)
    with pytest.raises(grpc.RpcError) as info:
        stub.CreateSession(pb.CreateSessionRequest())
    assert info.value.code() == grpc.StatusCode.UNAVAILABLE
    assert "rejected by plugin 'strict'" in info.value.details()
    assert server.store.counts().nodes[NodeKind.SESSION] == 0


def test_unreachable_webhook_with_ignore_lets_writes_through(
    start_inprocess: Start, tmp_path: Path
) -> None:
    plugins = write_plugins(
        tmp_path / "plugins.yaml",
        {
            "name": "gone",
            "type": "webhook",
            "hooks": ["before_create_session"],
            "failure_policy": "Ignore",
            "config": {"url": "http://127.0.0.1:9/hook"},
        },
    )
    stub = connect(start_inprocess(plugins_file=plugins))
    assert stub.CreateSession(pb.CreateSessionRequest(title="kept")).title == "kept"


def test_quota_limits_nodes_per_session(start_inprocess: Start, tmp_path: Path) -> None:
    plugins = write_plugins(
        tmp_path / "plugins.yaml",
        {
            "name": "quota",
            "type": "quota",
            "config": {"max_nodes_per_session": 3},
        },
    )
    stub = connect(start_inprocess(plugins_file=plugins))
    session = stub.CreateSession(pb.CreateSessionRequest())
    other = stub.CreateSession(pb.CreateSessionRequest())
    for i in range(3):
        stub.AddPrompt(pb.AddPromptRequest(session_id=session.id, content=f"p{i}"))
    with pytest.raises(grpc.RpcError) as info:
        stub.AddPrompt(pb.AddPromptRequest(session_id=session.id, content="one too many"))
    assert info.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert "quota" in info.value.details()
    stub.AddPrompt(pb.AddPromptRequest(session_id=other.id, content="elsewhere is fine"))


def test_reload_under_load_loses_no_request_and_bad_files_keep_the_last_good(
    start_inprocess: Start, tmp_path: Path
) -> None:
    path = write_plugins(
        tmp_path / "plugins.yaml", {"name": "tag", "type": "enricher", "config": {"prefix": "v1."}}
    )
    server = start_inprocess(plugins_file=path)
    assert server.plugins is not None
    manager = server.plugins
    stub = connect(server)
    session = stub.CreateSession(pb.CreateSessionRequest())
    failures: list[Exception] = []
    done = threading.Event()
    written = [0]

    def write() -> None:
        while not done.is_set():
            try:
                stub.AddPrompt(pb.AddPromptRequest(session_id=session.id, content="q"))
                written[0] += 1
            except grpc.RpcError as exc:
                failures.append(exc)

    writers = [threading.Thread(target=write) for _ in range(4)]
    for writer in writers:
        writer.start()
    for version in range(2, 7):
        write_plugins(
            path, {"name": "tag", "type": "enricher", "config": {"prefix": f"v{version}."}}
        )
        assert manager.check_once()
        time.sleep(0.05)
    path.write_text(
        "version: 1\nplugins:\n  - {name: bad, type: validator, config: {deny_patterns: ['(']}}\n"
    )
    assert not manager.check_once()
    time.sleep(0.05)
    done.set()
    for writer in writers:
        writer.join()
    assert failures == [] and written[0] > 0
    latest = stub.AddPrompt(pb.AddPromptRequest(session_id=session.id, content="after"))
    assert "v6.chars" in latest.metadata  # the last good configuration is still in force


def test_the_documented_example_webhook_service(start_inprocess: Start, tmp_path: Path) -> None:
    import socket
    import subprocess
    import sys

    from .conftest import REPO

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    service = subprocess.Popen(
        [
            sys.executable,
            str(REPO / "docs/examples/webhook_plugin.py"),
            "--port",
            str(port),
            "--token",
            "s3cret",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    try:
        assert service.stdout is not None and "listening" in service.stdout.readline()
        token = tmp_path / "token"
        token.write_text("s3cret")
        plugins = write_plugins(
            tmp_path / "plugins.yaml",
            {
                "name": "policy",
                "type": "webhook",
                "hooks": ["before_create_node"],
                "config": {"url": f"http://127.0.0.1:{port}/hook", "token_file": str(token)},
            },
        )
        stub = connect(start_inprocess(plugins_file=plugins))
        session = stub.CreateSession(pb.CreateSessionRequest())
        tagged = stub.AddPrompt(pb.AddPromptRequest(session_id=session.id, content="hello"))
        assert tagged.metadata["policy"] == "checked"
        with pytest.raises(grpc.RpcError) as info:
            stub.AddPrompt(pb.AddPromptRequest(session_id=session.id, content="my password"))
        assert info.value.details() == "rejected by plugin 'policy': mentions 'password'"
    finally:
        service.terminate()
        service.wait(10)


def test_a_read_hook_that_refuses_everything_refuses_every_read(
    start_inprocess: Start, webhook: Webhook, tmp_path: Path
) -> None:
    """before_query sees every RPC that returns graph data, not only Query."""
    refusing = {"on": False}

    def answer(body: dict[str, Any]) -> tuple[int, Any]:
        if refusing["on"] and body["call"]["hook"] == "before_query":
            return 200, {"allow": False, "reason": "reads are closed"}
        return 200, {"allow": True}

    webhook.answer = answer
    plugins = write_plugins(
        tmp_path / "plugins.yaml",
        {
            "name": "gate",
            "type": "webhook",
            "hooks": ["before_query"],
            "config": {"url": webhook.url},
        },
    )
    server = start_inprocess(plugins_file=plugins)
    stub = connect(server)
    session = stub.CreateSession(pb.CreateSessionRequest(title="t"))
    prompt = stub.AddPrompt(pb.AddPromptRequest(session_id=session.id, content="secret"))
    stub.CreateTemplate(pb.CreateTemplateRequest(name="t", content="hi"))
    reads: dict[str, Callable[[], Any]] = {
        "get_node": lambda: stub.GetNode(pb.GetNodeRequest(node_id=prompt.id)),
        "batch_get_nodes": lambda: stub.BatchGetNodes(
            pb.BatchGetNodesRequest(node_ids=[prompt.id])
        ),
        "get_session": lambda: stub.GetSession(pb.GetSessionRequest(session_id=session.id)),
        "list_sessions": lambda: stub.ListSessions(pb.ListSessionsRequest()),
        "query": lambda: stub.Query(pb.QueryRequest(filter=pb.QueryFilter(session_id=session.id))),
        "stream_query": lambda: list(
            stub.StreamQuery(pb.StreamQueryRequest(filter=pb.QueryFilter(session_id=session.id)))
        ),
        "traverse": lambda: stub.Traverse(pb.TraverseRequest(start_node_id=prompt.id)),
        "get_edges": lambda: stub.GetEdges(pb.GetEdgesRequest(node_id=prompt.id)),
        "get_template": lambda: stub.GetTemplate(pb.GetTemplateRequest(name="t")),
        "export_session": lambda: list(
            stub.ExportSession(pb.ExportSessionRequest(session_id=session.id))
        ),
        "stream_events": lambda: next(
            iter(stub.StreamEvents(pb.StreamEventsRequest(from_sequence=1), timeout=5))
        ),
        "subscribe_to_session": lambda: next(
            iter(
                stub.SubscribeToSession(
                    pb.SubscribeToSessionRequest(session_id=session.id, from_sequence=1),
                    timeout=5,
                )
            )
        ),
    }
    for read in reads.values():  # all allowed while the gate is open
        read()
    refusing["on"] = True
    webhook.calls.clear()
    for name, read in reads.items():
        with pytest.raises(grpc.RpcError) as info:
            read()
        assert info.value.code() == grpc.StatusCode.FAILED_PRECONDITION, name
        assert info.value.details() == "rejected by plugin 'gate': reads are closed", name
    seen = [c["call"] for c in webhook.calls]
    assert [c["details"]["read"] for c in seen] == list(reads)
    by_read = {c["details"]["read"]: c for c in seen}
    assert by_read["get_node"]["session_id"] == session.id
    assert by_read["get_node"]["details"]["node_ids"] == [prompt.id]
    assert by_read["query"]["details"]["kinds"] == []
