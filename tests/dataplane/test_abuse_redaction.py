"""Every text a user writes passes the plugins: a tool's arguments and result, a response's
finish reason, a prompt's role, an agent's name and capabilities, a session's title, user and
metadata. The redactor and the validator see them, and what they leave is what is stored."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import grpc
import pytest
from memorygraph.model import NodeKind
from memorygraph.plugins.builtin import Redactor, Validator
from memorygraph.plugins.calls import HookCall, PluginRejected
from memorygraph.plugins.schema import Hook, RedactorConfig, ValidatorConfig
from memorygraph.v1 import graph_pb2 as pb

from .plugin_support import LOOPBACK, Start, Webhook, connect, serve_plugins, webhook_plugin

EMAIL = "ada@example.com"
CARD = "4111 1111 1111 1111"
KEY = "sk-proj_abcdefghijklmnopqrstuv"


def _no_pii(*texts: str) -> None:
    for text in texts:
        assert EMAIL not in text and CARD not in text and KEY not in text, text


def test_the_default_redactor_covers_every_text_of_sessions_and_nodes(
    start_inprocess: Start, tmp_path: Path
) -> None:
    server = serve_plugins(start_inprocess, tmp_path, {"name": "pii", "type": "redactor"})
    stub = connect(server)
    session = stub.CreateSession(
        pb.CreateSessionRequest(
            title=f"chat with {EMAIL}",
            user_id=EMAIL,
            agent_id=f"agent of {EMAIL}",
            model="m1",
            metadata={"owner": EMAIL},
        )
    )
    stored = stub.GetSession(pb.GetSessionRequest(session_id=session.id))
    _no_pii(stored.title, stored.user_id, stored.agent_id, *stored.metadata.values())
    assert stored.user_id == "[redacted]" and stored.model == "m1"
    prompt = stub.AddPrompt(
        pb.AddPromptRequest(session_id=session.id, content="q", role=f"user {EMAIL}")
    )
    response = stub.AddResponse(
        pb.AddResponseRequest(prompt_id=prompt.id, content="a", finish_reason=f"stop {KEY}")
    )
    tool = stub.AddToolInvocation(
        pb.AddToolInvocationRequest(
            response_id=response.id,
            tool_name="lookup",
            arguments=f'{{"email": "{EMAIL}"}}',
            result=f"card {CARD}",
        )
    )
    agent = stub.CreateNode(
        pb.CreateNodeRequest(
            kind=pb.NODE_KIND_AGENT,
            agent=pb.AgentDetails(
                name="helper", description=f"ask {EMAIL}", capabilities=["search", EMAIL]
            ),
        )
    )
    nodes = {
        n.id: n
        for n in stub.BatchGetNodes(
            pb.BatchGetNodesRequest(node_ids=[prompt.id, response.id, tool.id, agent.id])
        ).nodes
    }
    _no_pii(nodes[prompt.id].prompt.role, nodes[response.id].response.finish_reason)
    stored_tool = nodes[tool.id].tool_invocation
    _no_pii(stored_tool.arguments, stored_tool.result)
    assert stored_tool.arguments == '{"email": "[redacted]"}' and stored_tool.tool_name == "lookup"
    stored_agent = nodes[agent.id].agent
    _no_pii(stored_agent.description, *stored_agent.capabilities)
    assert list(stored_agent.capabilities) == ["search", "[redacted]"]
    # The events hold what was stored, too.
    events = stub.StreamEvents(pb.StreamEventsRequest(from_sequence=1))
    seen = [next(events) for _ in range(server.store.events.retained())]
    events.cancel()
    _no_pii(*(str(e) for e in seen))


def test_the_validator_refuses_a_denied_pattern_in_any_text(
    start_inprocess: Start, tmp_path: Path
) -> None:
    server = serve_plugins(
        start_inprocess,
        tmp_path,
        {
            "name": "no-secrets",
            "type": "validator",
            "hooks": ["before_create_session", "before_create_node"],
            "config": {"deny_patterns": ["(?i)password"]},
        },
    )
    stub = connect(server)
    session = stub.CreateSession(pb.CreateSessionRequest())
    prompt = stub.AddPrompt(pb.AddPromptRequest(session_id=session.id, content="q"))
    response = stub.AddResponse(pb.AddResponseRequest(prompt_id=prompt.id, content="a"))
    counts = server.store.counts()
    calls: list[tuple[Any, str]] = [
        (
            lambda: stub.AddToolInvocation(
                pb.AddToolInvocationRequest(
                    response_id=response.id, tool_name="login", arguments='{"password": "x"}'
                )
            ),
            "arguments matches the denied pattern",
        ),
        (
            lambda: stub.CreateSession(pb.CreateSessionRequest(user_id="Password1")),
            "user_id matches the denied pattern",
        ),
        (
            lambda: stub.AddPrompt(
                pb.AddPromptRequest(session_id=session.id, content="q", metadata={"k": "password"})
            ),
            "metadata['k'] matches the denied pattern",
        ),
    ]
    for call, reason in calls:
        with pytest.raises(grpc.RpcError) as info:
            call()
        assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert reason in info.value.details()
    assert server.store.counts() == counts


def test_a_webhook_sees_the_texts_as_earlier_plugins_left_them_and_may_patch_them(
    start_inprocess: Start, webhook: Webhook, tmp_path: Path
) -> None:
    webhook.answer = lambda body: (200, {"allow": True, "patch": {"texts": {"role": "user"}}})
    redactor = {"name": "pii", "type": "redactor", "order": 1}
    policy = webhook_plugin("policy", webhook.url, ["before_create_node"], order=2)
    stub = connect(serve_plugins(start_inprocess, tmp_path, redactor, policy, **LOOPBACK))
    session = stub.CreateSession(pb.CreateSessionRequest())
    prompt = stub.AddPrompt(
        pb.AddPromptRequest(session_id=session.id, content="q", role=EMAIL, model="m1")
    )
    assert prompt.prompt.role == "user" and prompt.prompt.model == "m1"
    (body,) = webhook.calls
    call = body["call"]
    assert call["texts"] == {"model": "m1", "role": "[redacted]"}
    assert call["details"]["role"] == "[redacted]"  # no plugin sees what one before redacted


def test_a_webhook_patch_of_a_text_the_call_has_not_is_a_plugin_failure(
    start_inprocess: Start, webhook: Webhook, tmp_path: Path
) -> None:
    webhook.answer = lambda body: (200, {"allow": True, "patch": {"texts": {"secret": "x"}}})
    plugin = webhook_plugin("policy", webhook.url, ["before_create_session"])
    server = serve_plugins(start_inprocess, tmp_path, plugin, **LOOPBACK)
    stub = connect(server)
    with pytest.raises(grpc.RpcError) as info:
        stub.CreateSession(pb.CreateSessionRequest(user_id="u"))
    assert info.value.code() == grpc.StatusCode.UNAVAILABLE
    assert server.store.counts().nodes[NodeKind.SESSION] == 0


def test_what_a_plugin_leaves_must_still_fit_the_limits(
    start_inprocess: Start, tmp_path: Path
) -> None:
    redactor = {"name": "pii", "type": "redactor", "config": {"mode": "hash"}}
    server = serve_plugins(start_inprocess, tmp_path, redactor, max_name_bytes=20)
    stub = connect(server)
    with pytest.raises(grpc.RpcError) as info:
        stub.CreateSession(pb.CreateSessionRequest(user_id="a@b.co x"))  # 8 bytes, hashed 22
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "user_id is 22 bytes; the limit is 20 bytes" in info.value.details()


def test_built_ins_work_on_the_texts_of_a_call() -> None:
    call = HookCall(
        Hook.BEFORE_CREATE_NODE,
        "tool_invocation",
        content="",
        texts={"arguments": f"to {EMAIL}", "result": "ok"},
    )
    Redactor("pii", RedactorConfig()).handle(call)
    assert call.texts == {"arguments": "to [redacted]", "result": "ok"}
    kept = HookCall(Hook.BEFORE_CREATE_NODE, "prompt", texts={"role": EMAIL})
    Redactor("pii", RedactorConfig(redact_texts=False)).handle(kept)
    assert kept.texts == {"role": EMAIL}
    validator = Validator("v", ValidatorConfig(allowed_models=["m1"]))
    with pytest.raises(PluginRejected, match="model 'm2' is not allowed"):
        validator.handle(HookCall(Hook.BEFORE_CREATE_SESSION, "session", texts={"model": "m2"}))
