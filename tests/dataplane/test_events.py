"""The event log and its streams: every change recorded once, in order, resumable."""

from __future__ import annotations

import itertools
import threading
import time
from collections.abc import Callable, Iterator

import grpc
import pytest
from memorygraph.client import Client
from memorygraph.model import parse_id
from memorygraph.server import RunningServer
from memorygraph.store import keys
from memorygraph.store.shards import Shards
from memorygraph.v1 import graph_pb2 as pb
from memorygraph.v1.graph_pb2_grpc import MemoryGraphServiceStub

Start = Callable[..., RunningServer]


def connect(server: RunningServer) -> MemoryGraphServiceStub:
    return MemoryGraphServiceStub(grpc.insecure_channel(f"127.0.0.1:{server.port}"))


def take(stream: Iterator[pb.Event], count: int) -> list[pb.Event]:
    return list(itertools.islice(stream, count))


def record_turn(stub: MemoryGraphServiceStub) -> tuple[pb.Session, pb.Node, pb.Node]:
    session = stub.CreateSession(pb.CreateSessionRequest(title="s"))
    prompt = stub.AddPrompt(pb.AddPromptRequest(session_id=session.id, content="q"))
    response = stub.AddResponse(pb.AddResponseRequest(prompt_id=prompt.id, content="a"))
    return session, prompt, response


def test_every_change_appends_one_event_in_commit_order(stub: MemoryGraphServiceStub) -> None:
    session, prompt, _response = record_turn(stub)
    stub.CloseSession(pb.CloseSessionRequest(session_id=session.id))
    stub.DeleteSession(pb.DeleteSessionRequest(session_id=session.id))
    stream = stub.StreamEvents(pb.StreamEventsRequest(from_sequence=1))
    events = take(stream, 10)
    stream.cancel()
    sequences = [e.sequence for e in events]
    assert sequences == sorted(set(sequences))  # increasing, not consecutive
    # Each carries the session's shard in its low bits (the server's 64 shards).
    shard = Shards(64).of_id(parse_id(session.id, "session_id"))
    assert {keys.sequence_shard(s) for s in sequences} == {shard}
    assert [e.type for e in events] == [
        pb.EVENT_TYPE_SESSION_CREATED,
        pb.EVENT_TYPE_NODE_CREATED,  # prompt
        pb.EVENT_TYPE_EDGE_CREATED,  # belongs_to
        pb.EVENT_TYPE_NODE_CREATED,  # response
        pb.EVENT_TYPE_NODE_UPDATED,  # the session's token totals
        pb.EVENT_TYPE_EDGE_CREATED,  # responds_to
        pb.EVENT_TYPE_SESSION_CLOSED,
        pb.EVENT_TYPE_EDGE_DELETED,
        pb.EVENT_TYPE_EDGE_DELETED,
        pb.EVENT_TYPE_NODE_DELETED,
    ]
    assert events[1].node.id == prompt.id and events[1].node.content == "q"
    assert events[3].node.response.prompt_id == prompt.id
    assert events[2].edge.source_id == prompt.id and events[2].session_id == session.id


def test_filters_by_session_and_type(stub: MemoryGraphServiceStub) -> None:
    first, *_ = record_turn(stub)
    second, _, _ = record_turn(stub)
    only_second = stub.StreamEvents(pb.StreamEventsRequest(from_sequence=1, session_id=second.id))
    got = take(only_second, 6)
    only_second.cancel()
    assert {e.session_id for e in got} == {second.id}
    prompts = stub.StreamEvents(
        pb.StreamEventsRequest(from_sequence=1, types=[pb.EVENT_TYPE_SESSION_CREATED])
    )
    created = take(prompts, 2)
    prompts.cancel()
    assert [e.node.id for e in created] == [first.id, second.id]


def test_live_stream_sees_new_changes_and_resumes_without_gap_or_duplicate(
    stub: MemoryGraphServiceStub,
) -> None:
    session = stub.CreateSession(pb.CreateSessionRequest())
    stream = stub.StreamEvents(pb.StreamEventsRequest(from_sequence=1))
    seen = take(stream, 1)  # replayed; the stream is registered from here on
    for i in range(5):
        stub.AddPrompt(pb.AddPromptRequest(session_id=session.id, content=f"p{i}"))
    seen += take(stream, 3)
    stream.cancel()
    assert seen[0].type == pb.EVENT_TYPE_SESSION_CREATED
    resumed = stub.StreamEvents(pb.StreamEventsRequest(from_sequence=seen[-1].sequence + 1))
    rest = take(resumed, 7)
    resumed.cancel()
    sequences = [e.sequence for e in seen + rest]
    assert sequences == sorted(set(sequences)) and len(sequences) == 1 + 5 * 2


def test_subscribe_to_session_ends_after_the_session_is_deleted(
    stub: MemoryGraphServiceStub,
) -> None:
    session = stub.CreateSession(pb.CreateSessionRequest())
    events: list[pb.Event] = []
    subscription = stub.SubscribeToSession(
        pb.SubscribeToSessionRequest(session_id=session.id, from_sequence=1)
    )
    events.append(next(subscription))
    reader = threading.Thread(target=lambda: events.extend(subscription))
    reader.start()
    other = stub.CreateSession(pb.CreateSessionRequest())
    stub.AddPrompt(pb.AddPromptRequest(session_id=other.id, content="elsewhere"))
    stub.AddPrompt(pb.AddPromptRequest(session_id=session.id, content="here"))
    stub.DeleteSession(pb.DeleteSessionRequest(session_id=session.id))
    reader.join(10)
    assert not reader.is_alive()
    assert events[-1].type == pb.EVENT_TYPE_SESSION_DELETED
    assert {e.session_id for e in events} == {session.id}
    assert "elsewhere" not in {e.node.content for e in events}


def test_a_restored_session_replays_past_its_old_archival_marker(
    inprocess_server: RunningServer,
) -> None:
    """Replaying a session that was archived and restored passes its archival marker and goes
    on following it; the session's next archival ends the subscription."""
    events: list[pb.Event] = []
    with Client(f"127.0.0.1:{inprocess_server.port}") as mg:
        session = mg.create_session(title="s")
        mg.add_prompt(session.id, "before")
        export, summary = mg.export_session(session.id, for_archive=True)
        mg.archive_session(session.id, summary.content_sha256)
        mg.restore_session(export)
        subscription = mg.stub.SubscribeToSession(
            pb.SubscribeToSessionRequest(session_id=session.id, from_sequence=1)
        )
        reader = threading.Thread(target=lambda: events.extend(subscription))
        reader.start()
        mg.add_prompt(session.id, "after")
        deadline = time.monotonic() + 10
        while "after" not in {e.node.content for e in events} and time.monotonic() < deadline:
            time.sleep(0.05)
        following = reader.is_alive()
        mg.archive_session(session.id, mg.export_session(session.id)[1].content_sha256)
        reader.join(10)
    assert following and not reader.is_alive()
    types = [e.type for e in events]
    assert types.count(pb.EVENT_TYPE_SESSION_ARCHIVED) == 2
    assert pb.EVENT_TYPE_SESSION_RESTORED in types
    assert types[-1] == pb.EVENT_TYPE_SESSION_ARCHIVED


def test_subscribing_to_a_missing_session_is_not_found(stub: MemoryGraphServiceStub) -> None:
    with pytest.raises(grpc.RpcError) as info:
        list(
            stub.SubscribeToSession(
                pb.SubscribeToSessionRequest(session_id="0190a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5b")
            )
        )
    assert info.value.code() == grpc.StatusCode.NOT_FOUND


def test_slow_subscriber_is_ended_and_resumes_without_gap(start_inprocess: Start) -> None:
    server = start_inprocess(event_buffer_size=16)
    stub = connect(server)
    session = stub.CreateSession(pb.CreateSessionRequest())
    stream = stub.StreamEvents(pb.StreamEventsRequest(session_id=session.id, from_sequence=1))
    first = next(stream)  # registered; now stop reading while lots happens
    payload = "x" * 4000
    for chunk in range(10):
        stub.BatchCreateNodes(
            pb.BatchCreateNodesRequest(
                requests=[
                    pb.CreateNodeRequest(
                        kind=pb.NODE_KIND_PROMPT,
                        session_id=session.id,
                        content=f"{chunk}-{i}-{payload}",
                    )
                    for i in range(100)
                ]
            )
        )
    assert max(server.hub.buffered(), default=0) <= 16  # memory stays bounded
    received = [first]
    with pytest.raises(grpc.RpcError) as info:
        for event in stream:
            received.append(event)
    assert info.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert "fell behind" in info.value.details()
    resume_from = int(info.value.details().rsplit("from_sequence=", 1)[1])
    assert resume_from == received[-1].sequence + 1
    # the session, then per prompt: the node, its belongs_to and follows (the first has none)
    total = 1 + 10 * 100 * 3 - 1
    resumed = stub.StreamEvents(
        pb.StreamEventsRequest(session_id=session.id, from_sequence=resume_from)
    )
    received += take(resumed, total - len(received))
    resumed.cancel()
    sequences = [e.sequence for e in received]
    assert len(set(sequences)) == len(sequences) == total
    assert sequences == sorted(sequences)


@pytest.mark.one_process
def test_sequence_older_than_retention_is_out_of_range(start_inprocess: Start) -> None:
    server = start_inprocess(event_retention_max_events=5)
    stub = connect(server)
    record_turn(stub)
    record_turn(stub)
    everything = [e.sequence for e in server.store.events.read(0, 2**63, 1000)]
    newest, trimmed = everything[-5:], everything[-6]
    assert server.retention.trim_once() == newest[0]
    with pytest.raises(grpc.RpcError) as info:
        next(stub.StreamEvents(pb.StreamEventsRequest(from_sequence=1)))
    assert info.value.code() == grpc.StatusCode.OUT_OF_RANGE
    assert "oldest retained event is" in info.value.details()
    kept = stub.StreamEvents(pb.StreamEventsRequest(from_sequence=newest[0]))
    assert [e.sequence for e in take(kept, 5)] == newest
    kept.cancel()
    # A reader that saw the newest event trimmed resumes one past it: nothing is missing
    # there, though sequences are not consecutive.
    resumed = stub.StreamEvents(pb.StreamEventsRequest(from_sequence=trimmed + 1))
    assert [e.sequence for e in take(resumed, 5)] == newest
    resumed.cancel()
    with pytest.raises(grpc.RpcError) as info:
        next(stub.StreamEvents(pb.StreamEventsRequest(from_sequence=trimmed)))
    assert info.value.code() == grpc.StatusCode.OUT_OF_RANGE


@pytest.mark.one_process
def test_sequence_numbers_continue_after_restart(start_inprocess: Start) -> None:
    server = start_inprocess()
    record_turn(connect(server))
    last = server.store.events.last_sequence
    server.stop(grace=1)
    again = start_inprocess()
    stub = connect(again)
    stub.CreateSession(pb.CreateSessionRequest())
    stream = stub.StreamEvents(pb.StreamEventsRequest(from_sequence=last))
    events = take(stream, 2)
    stream.cancel()
    assert events[0].sequence == last < events[1].sequence
    assert events[1].type == pb.EVENT_TYPE_SESSION_CREATED


def test_replay_passes_over_the_history_an_archival_erased(start_inprocess: Start) -> None:
    """Archiving the log's first session, and a large one ending at a read-chunk boundary,
    leaves holes a replay steps over: no OUT_OF_RANGE, no event of the erased sessions."""
    server = start_inprocess()
    stub = connect(server)
    first = record_turn(stub)[0].id
    big = stub.CreateSession(pb.CreateSessionRequest(title="big"))
    for i in range(300):  # > READ_CHUNK events
        stub.AddPrompt(pb.AddPromptRequest(session_id=big.id, content=f"p{i}"))
    survivor = record_turn(stub)[0].id
    for session_id in (first, big.id):
        (*_, last) = stub.ExportSession(pb.ExportSessionRequest(session_id=session_id))
        stub.ArchiveSession(
            pb.ArchiveSessionRequest(
                session_id=session_id, content_sha256=last.summary.content_sha256
            )
        )
    subscription = stub.SubscribeToSession(pb.SubscribeToSessionRequest(session_id=survivor))
    stream = stub.StreamEvents(pb.StreamEventsRequest(from_sequence=1))
    events = []
    for event in stream:
        events.append(event)
        if len([e for e in events if e.type == pb.EVENT_TYPE_SESSION_ARCHIVED]) == 2:
            break
    stream.cancel()
    erased = {first, big.id}
    assert {e.session_id for e in events if e.type != pb.EVENT_TYPE_SESSION_ARCHIVED} == {survivor}
    assert [e.session_id for e in events if e.type == pb.EVENT_TYPE_SESSION_ARCHIVED] == [
        first,
        big.id,
    ]
    assert all(e.session_id not in erased or not e.node.content for e in events)
    # A session subscription ends with its archival.
    (*_, last) = stub.ExportSession(pb.ExportSessionRequest(session_id=survivor))
    stub.ArchiveSession(
        pb.ArchiveSessionRequest(session_id=survivor, content_sha256=last.summary.content_sha256)
    )
    assert list(subscription)[-1].type == pb.EVENT_TYPE_SESSION_ARCHIVED
