"""Batched writes: concurrent requests share one transaction, one write and one sync; a request
that fails fails alone and leaves nothing behind."""

from __future__ import annotations

import itertools
import threading
import time
from typing import Any

import pytest
from memorygraph.errors import InvalidArgument
from memorygraph.graph.batch import Batcher, Request
from memorygraph.graph.service import GraphService, Limits
from memorygraph.model import EdgeKind, NewNode, NewSession, NodeKind
from memorygraph.store import GraphStore, MemoryStore


def _run(count: int, target: Any, stagger: float = 0.01) -> list[Any]:
    results: list[Any] = [None] * count

    def call(i: int) -> None:
        try:
            results[i] = target(i)
        except Exception as exc:
            results[i] = exc

    threads = [threading.Thread(target=call, args=(i,)) for i in range(count)]
    for thread in threads:
        thread.start()
        time.sleep(stagger)  # queue up behind the first batch, in order
    for thread in threads:
        thread.join()
    return results


def test_requests_waiting_behind_a_batch_are_applied_together() -> None:
    batches: list[list[int]] = []

    def apply(requests: list[Request]) -> int:
        batches.append([r.work(None) for r in requests])
        for r in requests:
            r.outcome = r.work(None) * 10
        time.sleep(0.2)  # the others queue meanwhile
        return 0

    batcher = Batcher(apply, lambda ticket: None)
    results = _run(6, lambda i: batcher.submit(lambda tx: i))
    assert results == [0, 10, 20, 30, 40, 50]
    assert batches == [[0], [1, 2, 3, 4, 5]]


def test_a_failed_write_or_sync_fails_every_request_of_the_batch() -> None:
    def broken_apply(requests: list[Request]) -> int:
        raise OSError("disk full")

    batcher = Batcher(broken_apply, lambda ticket: None)
    assert all(isinstance(r, OSError) for r in _run(3, lambda i: batcher.submit(lambda tx: i)))

    def apply(requests: list[Request]) -> int:
        return 7

    def sync(ticket: int) -> None:
        raise OSError("sync failed")

    batcher = Batcher(apply, sync)
    assert all(isinstance(r, OSError) for r in _run(3, lambda i: batcher.submit(lambda tx: i)))


def test_concurrent_turns_keep_their_sessions_and_failures_leave_nothing() -> None:
    store = GraphStore(MemoryStore())
    service = GraphService(store)
    sessions = [service.create_session(NewSession()).id for _ in range(4)]
    writes: list[int] = []
    store.add_listener(writes.append)  # once per write to the store
    write = store.kv.write

    def slow_write(*args: Any, **kwargs: Any) -> None:
        time.sleep(0.002)  # as a disk would: others queue meanwhile
        write(*args, **kwargs)

    store.kv.write = slow_write  # type: ignore[method-assign]

    def turn(i: int) -> Any:
        session = sessions[i % 4]
        if i % 5 == 0:  # refused after its first node was written to the transaction
            service.create_nodes(
                [NewNode(NodeKind.PROMPT, session, "kept?"), NewNode(NodeKind.PROMPT, session, "")]
            )
        return service.create_node(NewNode(NodeKind.PROMPT, session, f"prompt {i}"))

    results = _run(400, turn, stagger=0)
    refused = [r for r in results if isinstance(r, Exception)]
    made = [r for r in results if not isinstance(r, Exception)]
    assert len(refused) == 80 and all(isinstance(r, InvalidArgument) for r in refused)
    assert len(made) == 320
    assert len(writes) < 320  # requests shared writes
    for session in sessions:
        members = [node_id for _, node_id, _ in store.scan_session(session)]
        mine = [n for n in made if n.session_id == session]
        assert sorted(members) == sorted(n.id for n in mine)
        # one `follows` chain per session, in creation order, each prompt after the one before
        ordered = [n.id for n in sorted(mine, key=lambda n: (n.create_time, n.id))]
        for earlier, later in itertools.pairwise(ordered):
            assert store.get_edge((later, EdgeKind.FOLLOWS, earlier)) is not None
    assert store.counts().nodes[NodeKind.PROMPT] == 320


def test_a_lone_request_fails_with_its_own_error() -> None:
    service = GraphService(GraphStore(MemoryStore()))
    with pytest.raises(InvalidArgument, match="session_id is required"):
        service.create_node(NewNode(NodeKind.PROMPT, None, "q"))


def test_a_lone_request_refused_after_making_its_node_leaves_nothing() -> None:
    # The response would not fit: the node is made in the transaction, then refused.
    store = GraphStore(MemoryStore())
    service = GraphService(store, limits=Limits(max_content_bytes=4096, max_message_bytes=2048))
    session = service.create_session(NewSession())
    first = service.create_node(NewNode(NodeKind.PROMPT, session.id, "short"))
    before = store.counts()
    with pytest.raises(InvalidArgument, match="the response would be"):
        service.create_node(NewNode(NodeKind.PROMPT, session.id, "x" * 3000))
    assert store.counts() == before
    assert [n for _, n, _ in store.scan_session(session.id)] == [first.id]
    after = service.create_node(NewNode(NodeKind.PROMPT, session.id, "next"))
    assert store.get_edge((after.id, EdgeKind.FOLLOWS, first.id)) is not None
