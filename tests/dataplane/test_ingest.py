"""Ingest: batches of turns applied atomically and acknowledged with the ids they created."""

from __future__ import annotations

from collections.abc import Iterator

import grpc
import pytest
from memorygraph.v1 import graph_pb2 as pb
from memorygraph.v1.graph_pb2_grpc import MemoryGraphServiceStub


def turn_batch(batch_id: str, turns: int) -> pb.IngestBatch:
    items = [pb.IngestItem(session=pb.CreateSessionRequest(title=batch_id))]
    for t in range(turns):
        prompt_index = len(items)
        items.append(pb.IngestItem(prompt=pb.AddPromptRequest(session_id="$0", content=f"q{t}")))
        items.append(
            pb.IngestItem(
                response=pb.AddResponseRequest(
                    prompt_id=f"${prompt_index}",
                    content=f"a{t}",
                    token_usage=pb.TokenUsage(prompt_tokens=3, completion_tokens=4),
                )
            )
        )
        items.append(
            pb.IngestItem(
                tool_invocation=pb.AddToolInvocationRequest(
                    response_id=f"${prompt_index + 1}", tool_name="search"
                )
            )
        )
    return pb.IngestBatch(batch_id=batch_id, items=items)


@pytest.mark.one_process("an ack names the newest event of the worker that took the batch")
def test_batches_are_acknowledged_with_created_ids(stub: MemoryGraphServiceStub) -> None:
    acks = list(stub.Ingest(iter([turn_batch("b1", 3), turn_batch("b2", 2)])))
    assert [a.batch_id for a in acks] == ["b1", "b2"]
    assert len(acks[0].ids) == 10 and len(acks[1].ids) == 7
    assert acks[0].sequence < acks[1].sequence
    session_id = acks[0].ids[0]
    nodes = stub.Query(pb.QueryRequest(filter=pb.QueryFilter(session_id=session_id))).nodes
    assert [n.id for n in nodes] == list(acks[0].ids[1:])
    response = stub.GetNode(pb.GetNodeRequest(node_id=acks[0].ids[2]))
    assert response.response.prompt_id == acks[0].ids[1]
    follows = stub.GetEdges(
        pb.GetEdgesRequest(node_id=acks[0].ids[4], kinds=[pb.EDGE_KIND_FOLLOWS])
    )
    assert [e.target_id for e in follows.edges] == [acks[0].ids[1]]
    session = stub.GetSession(pb.GetSessionRequest(session_id=session_id))
    assert session.token_usage.total_tokens == 21


def test_a_bad_batch_changes_nothing_and_ends_the_stream(stub: MemoryGraphServiceStub) -> None:
    good = turn_batch("good", 1)
    bad = turn_batch("bad", 2)
    bad.items[5].response.content = ""  # the second turn's response is invalid

    def batches() -> Iterator[pb.IngestBatch]:
        yield good
        yield bad
        yield turn_batch("never", 1)

    acks: list[pb.IngestAck] = []
    with pytest.raises(grpc.RpcError) as info:
        for ack in stub.Ingest(batches()):
            acks.append(ack)
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "batch 1 ('bad')" in info.value.details() and "items[5]" in info.value.details()
    assert [a.batch_id for a in acks] == ["good"]
    metrics = stub.GetMetrics(pb.GetMetricsRequest())
    assert metrics.sessions == 1 and metrics.nodes_by_kind["prompt"] == 1


@pytest.mark.parametrize(
    ("reference", "fragment"), [("$7", "does not name an earlier item"), ("$x", "not a reference")]
)
def test_bad_references_are_invalid(
    stub: MemoryGraphServiceStub, reference: str, fragment: str
) -> None:
    batch = pb.IngestBatch(
        items=[
            pb.IngestItem(session=pb.CreateSessionRequest()),
            pb.IngestItem(prompt=pb.AddPromptRequest(session_id=reference, content="q")),
        ]
    )
    with pytest.raises(grpc.RpcError) as info:
        list(stub.Ingest(iter([batch])))
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert fragment in info.value.details()


def test_a_node_id_the_caller_gives_must_be_new(stub: MemoryGraphServiceStub) -> None:
    acks = list(stub.Ingest(iter([turn_batch("first", 1)])))
    session_id, prompt_id = acks[0].ids[0], acks[0].ids[1]
    again = pb.IngestBatch(
        items=[
            pb.IngestItem(prompt=pb.AddPromptRequest(session_id=session_id, content="kept?")),
            pb.IngestItem(
                node=pb.CreateNodeRequest(
                    node_id=prompt_id,
                    kind=pb.NODE_KIND_PROMPT,
                    session_id=session_id,
                    content="a second node under a taken id",
                )
            ),
        ]
    )
    with pytest.raises(grpc.RpcError) as info:
        list(stub.Ingest(iter([again])))
    assert info.value.code() == grpc.StatusCode.ALREADY_EXISTS
    assert "items[1]" in info.value.details() and prompt_id in info.value.details()
    metrics = stub.GetMetrics(pb.GetMetricsRequest())
    assert metrics.nodes_by_kind["prompt"] == 1
    assert stub.GetNode(pb.GetNodeRequest(node_id=prompt_id)).content == "q0"
