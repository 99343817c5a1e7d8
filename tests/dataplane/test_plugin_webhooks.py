"""Webhook plugins against real HTTP services: answers, tokens, timeouts, failure policies,
and services that answer slowly, endlessly, compressed or with a reason meant for the log."""

from __future__ import annotations

import gzip
import logging
import socket
import threading
import time
from pathlib import Path
from typing import Any

import grpc
import pytest
from memorygraph.model import NodeKind
from memorygraph.v1 import graph_pb2 as pb

from .plugin_support import (
    ALLOW,
    LOOPBACK,
    RawWebhook,
    Start,
    Webhook,
    connect,
    dripping,
    flooding,
    serve_plugins,
    webhook_plugin,
    write_token,
)


def test_webhook_allow_deny_patch_and_bearer_token(
    start_inprocess: Start, webhook: Webhook, tmp_path: Path
) -> None:
    secrets = tmp_path / "plugin-secrets"
    token = write_token(secrets, "policy", "s3cret\n")

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
    plugin = webhook_plugin("policy", webhook.url, ["before_create_node"], token_file=str(token))
    server = serve_plugins(
        start_inprocess, tmp_path, plugin, plugin_secrets_dir=secrets, **LOOPBACK
    )
    stub = connect(server)
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
    plugin = webhook_plugin(
        "slow", webhook.url, ["before_create_node"], timeout_seconds=0.3, failure_policy=policy
    )
    stub = connect(serve_plugins(start_inprocess, tmp_path, plugin, **LOOPBACK))
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
    strict = webhook_plugin("strict", webhook.url, ["before_create_session"], failure_policy="Fail")
    lenient = webhook_plugin(
        "lenient", webhook.url, ["before_create_node"], failure_policy="Ignore"
    )
    server = serve_plugins(start_inprocess, tmp_path, strict, lenient, **LOOPBACK)
    stub = connect(server)
    with pytest.raises(grpc.RpcError) as info:
        stub.CreateSession(pb.CreateSessionRequest())
    assert info.value.code() == grpc.StatusCode.UNAVAILABLE
    assert "rejected by plugin 'strict'" in info.value.details()
    assert server.store.counts().nodes[NodeKind.SESSION] == 0


def test_unreachable_webhook_with_ignore_lets_writes_through(
    start_inprocess: Start, tmp_path: Path
) -> None:
    plugin = webhook_plugin(
        "gone", "http://127.0.0.1:9/hook", ["before_create_session"], failure_policy="Ignore"
    )
    stub = connect(serve_plugins(start_inprocess, tmp_path, plugin, **LOOPBACK))
    assert stub.CreateSession(pb.CreateSessionRequest(title="kept")).title == "kept"


def test_the_documented_example_webhook_service(start_inprocess: Start, tmp_path: Path) -> None:
    import subprocess
    import sys

    from .conftest import REPO, free_port

    port = free_port()
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
        secrets = tmp_path / "plugin-secrets"
        token = write_token(secrets, "policy", "s3cret")
        url = f"http://127.0.0.1:{port}/hook"
        plugin = webhook_plugin("policy", url, ["before_create_node"], token_file=str(token))
        server = serve_plugins(
            start_inprocess, tmp_path, plugin, plugin_secrets_dir=secrets, **LOOPBACK
        )
        stub = connect(server)
        session = stub.CreateSession(pb.CreateSessionRequest())
        tagged = stub.AddPrompt(pb.AddPromptRequest(session_id=session.id, content="hello"))
        assert tagged.metadata["policy"] == "checked"
        with pytest.raises(grpc.RpcError) as info:
            stub.AddPrompt(pb.AddPromptRequest(session_id=session.id, content="my password"))
        assert info.value.details() == "rejected by plugin 'policy': mentions 'password'"
    finally:
        service.terminate()
        service.wait(10)


@pytest.mark.parametrize("where", ["headers", "body"])
def test_the_timeout_bounds_the_whole_exchange_of_a_webhook_that_drips_its_answer(
    start_inprocess: Start, tmp_path: Path, where: str
) -> None:
    service = RawWebhook(dripping(where))
    plugin = webhook_plugin("drip", service.url, ["before_create_node"], timeout_seconds=1)
    stub = connect(serve_plugins(start_inprocess, tmp_path, plugin, **LOOPBACK))
    session = stub.CreateSession(pb.CreateSessionRequest())
    started = time.monotonic()
    with pytest.raises(grpc.RpcError) as info:
        stub.AddPrompt(pb.AddPromptRequest(session_id=session.id, content="q"), timeout=30)
    elapsed = time.monotonic() - started
    service.stop()
    assert info.value.code() == grpc.StatusCode.UNAVAILABLE
    assert info.value.details() == (
        "rejected by plugin 'drip': did not answer in time and its failure policy is Fail"
    )
    assert service.requests == 1 and elapsed < 2, elapsed


@pytest.mark.parametrize("declare", [True, False], ids=["declared", "undeclared"])
def test_a_webhook_answer_over_its_bound_is_refused_unread(
    start_inprocess: Start, tmp_path: Path, caplog: pytest.LogCaptureFixture, declare: bool
) -> None:
    service = RawWebhook(flooding(declare))
    plugin = webhook_plugin("flood", service.url, ["before_create_node"])
    server = serve_plugins(
        start_inprocess, tmp_path, plugin, plugins_max_answer_bytes=64 << 10, **LOOPBACK
    )
    stub = connect(server)
    session = stub.CreateSession(pb.CreateSessionRequest())
    with pytest.raises(grpc.RpcError) as info:
        stub.AddPrompt(pb.AddPromptRequest(session_id=session.id, content="q"), timeout=30)
    service.stop()
    assert info.value.code() == grpc.StatusCode.UNAVAILABLE
    assert "rejected by plugin 'flood': failed" in info.value.details()
    (failure,) = [r.getMessage() for r in caplog.records if "plugin flood failed" in r.getMessage()]
    expected = "is 67108879 bytes, more than" if declare else "larger than the 65536 bytes"
    assert expected in failure, failure


def test_a_compressed_webhook_answer_is_refused(
    start_inprocess: Start, webhook: Webhook, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A few kilobytes of gzip can stand for gigabytes: answers are read as they come."""

    def respond(connection: socket.socket) -> None:
        body = gzip.compress(ALLOW)
        head = b"HTTP/1.1 200 OK\r\nContent-Encoding: gzip\r\nContent-Length: %d\r\n\r\n"
        connection.sendall(head % len(body) + body)

    service = RawWebhook(respond)
    plugin = webhook_plugin("zipped", service.url, ["before_create_session"])
    stub = connect(serve_plugins(start_inprocess, tmp_path, plugin, **LOOPBACK))
    with pytest.raises(grpc.RpcError) as info:
        stub.CreateSession(pb.CreateSessionRequest())
    service.stop()
    assert info.value.code() == grpc.StatusCode.UNAVAILABLE
    assert any("the answer is compressed (gzip)" in r.getMessage() for r in caplog.records)


def test_a_refusal_reason_is_one_bounded_line_in_the_status_and_the_log(
    start_inprocess: Start, webhook: Webhook, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    forged = "spam\n2030-01-01 00:00:00 INFO memorygraph.server [-] all is well\x1b[2J\u202e"
    webhook.answer = lambda body: (200, {"allow": False, "reason": forged + "x" * 10_000})
    plugin = webhook_plugin("policy", webhook.url, ["before_create_session"])
    stub = connect(serve_plugins(start_inprocess, tmp_path, plugin, **LOOPBACK))
    caplog.set_level(logging.DEBUG, logger="memorygraph")
    with pytest.raises(grpc.RpcError) as info:
        stub.CreateSession(pb.CreateSessionRequest())
    details = info.value.details()
    prefix = "rejected by plugin 'policy': "
    assert details.startswith(prefix + "spam 2030-01-01 00:00:00 INFO memorygraph.server [-]")
    assert len(details) == len(prefix) + 500 and details.endswith("x…")
    assert details.isprintable()
    lines = [r.getMessage() for r in caplog.records if "rejected by plugin" in r.getMessage()]
    assert lines and all(line.isprintable() for line in lines)
