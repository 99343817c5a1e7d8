"""kill -9 in the middle of a stream of acknowledged writes, round after round (durable mode):
no acknowledged write is lost and no batch is ever half there, whether the write-ahead log file
written last was a new one or one reused after the log rolled over."""

from __future__ import annotations

import functools
import threading
import uuid
from pathlib import Path

import grpc
import pytest
from memorygraph.store.rocks import MAX_WAL_BYTES, reused_a_log_file
from memorygraph.v1 import graph_pb2 as pb
from memorygraph.v1.graph_pb2_grpc import MemoryGraphServiceStub

from .conftest import ServerProcess

pytestmark = pytest.mark.slow

ROUNDS = 5
TURNS = 10
# Filler prompts: about twice their size in the log each; FILLERS of them hold as much as the
# store's write-ahead log before it rolls over.
FILLER_CHARS = 900_000
FILLERS = MAX_WAL_BYTES // (2 * FILLER_CHARS) + 1


def batch_with_known_ids() -> tuple[pb.IngestBatch, list[str]]:
    """A session and TURNS prompt/response pairs, every id chosen by the client."""
    session = str(uuid.uuid4())
    items = [pb.IngestItem(session=pb.CreateSessionRequest(session_id=session))]
    ids = [session]
    for turn in range(TURNS):
        prompt, response = str(uuid.uuid4()), str(uuid.uuid4())
        items.append(
            pb.IngestItem(
                node=pb.CreateNodeRequest(
                    node_id=prompt, kind=pb.NODE_KIND_PROMPT, session_id=session, content=f"q{turn}"
                )
            )
        )
        items.append(
            pb.IngestItem(
                node=pb.CreateNodeRequest(
                    node_id=response,
                    kind=pb.NODE_KIND_RESPONSE,
                    content=f"a{turn}",
                    response=pb.ResponseDetails(prompt_id=prompt),
                )
            )
        )
        ids += [prompt, response]
    return pb.IngestBatch(batch_id=session, items=items), ids


def load(
    stub: MemoryGraphServiceStub,
    sent: list[list[str]],
    acknowledged: list[list[str]],
    lock: threading.Lock,
    enough: threading.Event,
) -> None:
    """Ingest batches until the server dies, recording what was sent and acknowledged."""
    try:
        while True:
            batch, ids = batch_with_known_ids()
            with lock:
                sent.append(ids)
            for _ in stub.Ingest(iter([batch]), timeout=10):
                with lock:
                    acknowledged.append(ids)
                    if len(acknowledged) % 40 == 0:
                        enough.set()
    except grpc.RpcError:
        return  # the server died under us


def roll_wal_over(stub: MemoryGraphServiceStub, data_dir: Path) -> int:
    """Write filler prompts until the write-ahead log has rolled over onto a reused file, so
    that the writes after this go to one; returns how many."""
    session = stub.CreateSession(pb.CreateSessionRequest(title="filler")).id
    content = "f" * FILLER_CHARS
    written = 0
    while not reused_a_log_file(data_dir):
        assert written < 4 * FILLERS, "the write-ahead log was never written to a reused file"
        stub.AddPrompt(pb.AddPromptRequest(session_id=session, content=content), timeout=30)
        written += 1
    return written


@pytest.mark.parametrize("reused_log", [False, True], ids=["new-log", "reused-log"])
def test_kill_9_loses_no_acknowledged_batch_and_leaves_no_partial_one(
    tmp_path: Path, reused_log: bool
) -> None:
    server = ServerProcess(tmp_path / "data", "--durability", "durable")
    sent: list[list[str]] = []  # every batch handed to the server, acknowledged or not
    acknowledged: list[list[str]] = []
    fillers: list[int] = []  # filler prompts, a session of them each round (`reused_log`)
    for _ in range(ROUNDS):
        server.start()
        channel = grpc.insecure_channel(server.address)
        stub = MemoryGraphServiceStub(channel)
        if reused_log:
            fillers.append(roll_wal_over(stub, server.data_dir))
        enough = threading.Event()
        lock = threading.Lock()

        write = functools.partial(load, stub, sent, acknowledged, lock, enough)
        server.kill_while_writing(write, writers=3, enough=enough, join=15)
        channel.close()

    server.start()
    with grpc.insecure_channel(server.address) as channel:
        stub = MemoryGraphServiceStub(channel)
        for ids in acknowledged:
            assert list(stub.BatchGetNodes(pb.BatchGetNodesRequest(node_ids=ids)).missing_ids) == []
        partial = []
        for ids in sent:
            missing = len(stub.BatchGetNodes(pb.BatchGetNodesRequest(node_ids=ids)).missing_ids)
            if missing not in (0, len(ids)):
                partial.append((ids[0], missing))
        assert partial == []
        # Counters and event log were in the same batches: they agree with what survived.
        survived = sum(
            1
            for ids in sent
            if not stub.BatchGetNodes(pb.BatchGetNodesRequest(node_ids=ids[:1])).missing_ids
        )
        metrics = stub.GetMetrics(pb.GetMetricsRequest())
        assert metrics.sessions == survived + len(fillers)
        assert metrics.nodes_by_kind["prompt"] == survived * TURNS + sum(fillers)
    server.stop()
    assert len(acknowledged) >= ROUNDS * 40
