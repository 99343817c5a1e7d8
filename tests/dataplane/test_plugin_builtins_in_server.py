"""Built-in plugins in a running server: rejections, transformations, quotas, reloads."""

from __future__ import annotations

import itertools
import threading
import time
from pathlib import Path

import grpc
import pytest
from memorygraph.v1 import graph_pb2 as pb

from .plugin_support import Start, connect, serve_plugins, write_plugins


def test_rejection_names_the_plugin_and_leaves_no_trace(
    start_inprocess: Start, tmp_path: Path
) -> None:
    server = serve_plugins(
        start_inprocess,
        tmp_path,
        {
            "name": "no-secrets",
            "type": "validator",
            "config": {"deny_patterns": ["(?i)password"], "max_content_length": 50},
        },
    )
    stub = connect(server)
    session = stub.CreateSession(pb.CreateSessionRequest())
    counters, sequence = server.store.counts(), server.store.events.last_sequence
    for content, reason in (("my Password is hunter2", "denied pattern"), ("x" * 51, "at most 50")):
        with pytest.raises(grpc.RpcError) as info:
            stub.AddPrompt(pb.AddPromptRequest(session_id=session.id, content=content))
        assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert "rejected by plugin 'no-secrets'" in info.value.details()
        assert reason in info.value.details()
    # A turn whose response a plugin refuses is refused whole: not even its prompt is kept.
    turn = pb.RecordTurnRequest(
        prompt=pb.AddPromptRequest(session_id=session.id, content="fine"),
        response=pb.AddResponseRequest(content="the password is hunter2"),
    )
    with pytest.raises(grpc.RpcError) as info:
        stub.RecordTurn(turn)
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert info.value.details().startswith("response: rejected by plugin 'no-secrets'")
    batch = pb.BatchCreateNodesRequest(
        requests=[
            pb.CreateNodeRequest(kind=pb.NODE_KIND_PROMPT, session_id=session.id, content=text)
            for text in ("fine", "password: x")
        ]
    )
    with pytest.raises(grpc.RpcError) as info:
        stub.BatchCreateNodes(batch)
    assert info.value.details().startswith("requests[1]: rejected by plugin 'no-secrets'")
    assert server.store.counts() == counters
    assert server.store.events.last_sequence == sequence
    stub.AddPrompt(pb.AddPromptRequest(session_id=session.id, content="fine"))


def test_transformation_is_what_gets_stored_and_streamed(
    start_inprocess: Start, tmp_path: Path
) -> None:
    server = serve_plugins(
        start_inprocess,
        tmp_path,
        {"name": "pii", "type": "redactor", "order": 1},
        {"name": "facts", "type": "enricher", "order": 2},
    )
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
    turn = stub.RecordTurn(
        pb.RecordTurnRequest(
            prompt=pb.AddPromptRequest(session_id=session.id, content=text),
            response=pb.AddResponseRequest(content=f"sent to {text}"),
            tool_invocations=[pb.AddToolInvocationRequest(tool_name="mail", arguments=text)],
        )
    )
    assert turn.prompt.content == expected and turn.response.content == f"sent to {expected}"
    assert stub.GetNode(pb.GetNodeRequest(node_id=turn.response.id)) == turn.response
    tool = turn.tool_invocations[0]
    assert stub.GetNode(pb.GetNodeRequest(node_id=tool.id)) == tool


def test_quota_limits_nodes_per_session(start_inprocess: Start, tmp_path: Path) -> None:
    quota = {"name": "quota", "type": "quota", "config": {"max_nodes_per_session": 3}}
    stub = connect(serve_plugins(start_inprocess, tmp_path, quota))
    session = stub.CreateSession(pb.CreateSessionRequest())
    other = stub.CreateSession(pb.CreateSessionRequest())
    for i in range(3):
        stub.AddPrompt(pb.AddPromptRequest(session_id=session.id, content=f"p{i}"))
    with pytest.raises(grpc.RpcError) as info:
        stub.AddPrompt(pb.AddPromptRequest(session_id=session.id, content="one too many"))
    assert info.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert "quota" in info.value.details()
    stub.AddPrompt(pb.AddPromptRequest(session_id=other.id, content="elsewhere is fine"))


def test_quota_counts_every_node_of_a_turn(start_inprocess: Start, tmp_path: Path) -> None:
    quota = {"name": "quota", "type": "quota", "config": {"max_nodes_per_session": 3}}
    stub = connect(serve_plugins(start_inprocess, tmp_path, quota))
    session = stub.CreateSession(pb.CreateSessionRequest())
    big = pb.RecordTurnRequest(
        prompt=pb.AddPromptRequest(session_id=session.id, content="q"),
        response=pb.AddResponseRequest(content="a"),
        tool_invocations=[pb.AddToolInvocationRequest(tool_name=f"t{i}") for i in range(5)],
    )
    with pytest.raises(grpc.RpcError) as info:
        stub.RecordTurn(big)  # 7 nodes in a session that may hold 3
    assert info.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    query = pb.QueryRequest(filter=pb.QueryFilter(session_id=session.id))
    assert list(stub.Query(query).nodes) == []


@pytest.mark.one_process
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
