"""Webhook plugins against a real HTTP service: answers, tokens, timeouts, failure policies."""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any

import grpc
import pytest
from memorygraph.model import NodeKind
from memorygraph.v1 import graph_pb2 as pb

from .plugin_support import Start, Webhook, connect, write_plugins


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
