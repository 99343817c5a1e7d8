"""The `memorygraph` command against a real server subprocess."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from memorygraph.client import Client

from .conftest import REPO, ServerProcess

pytestmark = pytest.mark.slow


def run(server: str, *args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(REPO / "dataplane")}
    return subprocess.run(
        [sys.executable, "-m", "memorygraph", "--server", server, *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
        input=stdin,
    )


def ok(server: str, *args: str, stdin: str | None = None) -> dict:  # type: ignore[type-arg]
    result = run(server, *args, stdin=stdin)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)  # type: ignore[no-any-return]


def test_the_tour(server_process: ServerProcess, tmp_path: Path) -> None:
    address = server_process.address
    session = ok(address, "session", "create", "--title", "support chat", "--user", "u-42")
    prompt = ok(
        address,
        "prompt",
        "add",
        session["id"],
        "-",
        "--model",
        "gpt-4o",
        stdin="Where is my order?",
    )
    assert prompt["content"] == "Where is my order?"
    response = ok(
        address,
        "response",
        "add",
        prompt["id"],
        "It ships today.",
        "--prompt-tokens",
        "12",
        "--completion-tokens",
        "6",
    )
    tool = ok(
        address,
        "tool",
        "add",
        response["id"],
        "--name",
        "order_lookup",
        "--arguments",
        '{"order": 1}',
        "--status",
        "succeeded",
    )
    found = ok(
        address, "query", "--session", session["id"], "--kind", "prompt", "--kind", "response"
    )
    assert [n["id"] for n in found["nodes"]] == [prompt["id"], response["id"]]
    everything = ok(address, "query", "--session", session["id"], "--all")
    assert len(everything["nodes"]) == 3
    out = tmp_path / "session.json"
    result = run(address, "dump", session["id"], "-o", str(out))
    assert result.returncode == 0 and "3 nodes and 3 edges" in result.stderr
    dumped = json.loads(out.read_text())
    assert dumped["session"]["token_usage"]["total_tokens"] == "18"
    assert {n["id"] for n in dumped["nodes"]} == {prompt["id"], response["id"], tool["id"]}
    assert len(dumped["edges"]) == 3
    result = run(address, "export", session["id"], "-o", str(tmp_path / "session.jsonl"))
    assert result.returncode == 0 and "wrote 3 nodes, 3 edges and " in result.stderr
    events = run(address, "events", "--from-sequence", "1", "--limit", "2")
    lines = [json.loads(line) for line in events.stdout.splitlines()]
    assert [e["type"] for e in lines] == ["EVENT_TYPE_SESSION_CREATED", "EVENT_TYPE_NODE_CREATED"]
    assert ok(address, "session", "list")["sessions"][0]["id"] == session["id"]
    assert ok(address, "session", "close", session["id"])["state"] == "SESSION_STATE_CLOSED"
    assert ok(address, "session", "delete", session["id"])["deleted_nodes"] == "4"
    assert ok(address, "health")["status"] == "STATUS_SERVING"


def test_a_whole_turn_in_one_command(server_process: ServerProcess) -> None:
    address = server_process.address
    session = ok(address, "session", "create", "--title", "turns")["id"]
    turn = ok(
        address,
        "turn",
        "add",
        session,
        "Where is my order?",
        "It ships today.",
        "--model",
        "gpt-4o",
        "--prompt-tokens",
        "12",
        "--completion-tokens",
        "6",
        "--tool",
        '{"tool_name": "order_lookup", "arguments": "{}", "status": "succeeded"}',
        "--tool",
        '{"tool_name": "notify", "duration_ms": "40"}',
        "--meta",
        "channel=web",
    )
    assert turn["prompt"]["metadata"] == {"channel": "web"}
    assert turn["response"]["response"]["prompt_id"] == turn["prompt"]["id"]
    assert [t["tool_invocation"]["tool_name"] for t in turn["tool_invocations"]] == [
        "order_lookup",
        "notify",
    ]
    assert turn["tool_invocations"][1]["tool_invocation"]["duration_ms"] == "40"
    assert ok(address, "session", "get", session)["token_usage"]["total_tokens"] == "18"
    ids = run(
        address, "turn", "add", session, "q", "a", "--tool", '{"tool_name": "t"}', "--id-only"
    )
    assert ids.returncode == 0 and len(ids.stdout.split()) == 3
    assert len(ok(address, "query", "--session", session, "--all")["nodes"]) == 7
    for tool, message in [
        ("[1]", "expected a JSON object"),
        ('{"name": "t"}', "unknown field 'name'"),
        ('{"tool_name": "t", "status": "done"}', "status 'done'"),
        ('{"tool_name": "t", "duration_ms": "soon"}', "duration_ms"),
        ('{"tool_name": "t", "duration_ms": 2.5}', "duration_ms"),
        ("{", "not JSON"),
    ]:
        refused = run(address, "turn", "add", session, "q", "a", "--tool", tool)
        assert refused.returncode == 2 and message in refused.stderr, refused.stderr
        assert "Traceback" not in refused.stderr
    no_name = run(address, "turn", "add", session, "q", "a", "--tool", "{}")
    assert no_name.returncode == 1
    assert "INVALID_ARGUMENT: tool_invocations[0]: tool_name is required" in no_name.stderr
    assert len(ok(address, "query", "--session", session, "--all")["nodes"]) == 7


def test_export_writes_the_servers_export_and_dump_one_json_document(
    server_process: ServerProcess, tmp_path: Path
) -> None:
    with Client(server_process.address) as mg:
        session = mg.create_session(title="exported")
        prompt = mg.add_prompt(session.id, "q")
        mg.add_response(prompt.id, "a")
        export, summary = mg.export_session(session.id)
    printed = run(server_process.address, "export", session.id)
    assert printed.returncode == 0 and printed.stdout.encode() == export
    header = json.loads(printed.stdout.splitlines()[0])
    assert header["format"] == "memorygraph.session"
    assert (header["nodes"], header["edges"], header["events"]) == (2, 2, 6)
    written = tmp_path / "session.jsonl"
    result = run(server_process.address, "export", session.id, "--output", str(written))
    assert result.returncode == 0 and written.read_bytes() == export
    assert result.stderr == (
        f"wrote 2 nodes, 2 edges and 6 events ({len(export)} bytes, "
        f"SHA-256 {summary.content_sha256}) to {written}\n"
    )
    dumped = ok(server_process.address, "dump", session.id)
    assert sorted(dumped) == ["edges", "nodes", "session"]
    assert [n["content"] for n in dumped["nodes"]] == ["q", "a"]
    assert len(dumped["edges"]) == 2


def test_exit_codes(server_process: ServerProcess, tmp_path: Path) -> None:
    refused = run(server_process.address, "session", "get", "not-an-id")
    assert refused.returncode == 1
    assert refused.stderr.startswith("error: INVALID_ARGUMENT: session_id 'not-an-id'")
    missing = run(server_process.address, "session", "get", "0190a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5b")
    assert missing.returncode == 1 and "NOT_FOUND" in missing.stderr
    unreachable = run("127.0.0.1:1", "health")
    assert unreachable.returncode == 3 and "cannot reach the server" in unreachable.stderr
    usage = run(server_process.address, "query", "--kind", "robot")
    assert usage.returncode == 2
    bad_config = tmp_path / "bad.yaml"
    bad_config.write_text("port: not-a-number\n")
    config = run(server_process.address, "serve", "--config", str(bad_config))
    assert config.returncode == 2 and "port" in config.stderr
    assert "Traceback" not in config.stderr + refused.stderr + unreachable.stderr


def test_plugins_check(tmp_path: Path) -> None:
    good = tmp_path / "plugins.yaml"
    good.write_text("version: 1\nplugins:\n  - {name: pii, type: redactor, order: 5}\n")
    result = run("unused", "plugins", "check", str(good))
    assert result.returncode == 0 and "pii: redactor, order 5, enabled" in result.stdout
    bad = tmp_path / "bad.yaml"
    bad.write_text(
        "version: 1\nplugins:\n  - {name: v, type: validator, config: {deny_patterns: ['(']}}\n"
    )
    result = run("unused", "plugins", "check", str(bad))
    assert result.returncode == 2
    assert "not a valid RE2 pattern" in result.stderr and "plugins.0" in result.stderr
