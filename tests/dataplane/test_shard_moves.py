"""Moving a shard between workers (`store.moves`): the copy catches up with what changed since
the last, the new owner counts the shard in and serves it with its history, the old owner
counts it out and keeps nothing of it, and every step run again after a crash finishes the
move once."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from memorygraph.model import (
    EdgeKind,
    NewEdge,
    NewNode,
    NewSession,
    NodeKind,
    PromptDetails,
    ResponseDetails,
    TokenUsage,
)
from memorygraph.store import keys
from memorygraph.store.moves import adopt_shard, shard_state, sync_shard, unreported

from .split_support import SplitGraph, SplitService

STEPS = [None, "copied", "fenced", "adopted", "handed over", "released"]


@pytest.fixture
def graph() -> Iterator[SplitGraph]:
    made = SplitGraph(count=2, shards=8)
    yield made
    made.close()


def _session_on(graph: SplitGraph, shard: int) -> bytes:
    """A session on `shard` with a prompt and a response to it (with token counts)."""
    service = graph.services[graph.owners[shard]]
    while True:
        session = service.create_session(NewSession(title=f"on {shard}"))
        if service.store.shards.of_id(session.id) == shard:
            break
    prompt = service.create_node(NewNode(NodeKind.PROMPT, session.id, "q", details=PromptDetails()))
    response = service.create_node(
        NewNode(
            NodeKind.RESPONSE,
            session.id,
            "a",
            details=ResponseDetails(token_usage=TokenUsage(3, 4, 7)),
        )
    )
    service.create_edge(NewEdge(response.id, prompt.id, EdgeKind.RESPONDS_TO))
    return session.id


def _totals(graph: SplitGraph) -> tuple[object, int]:
    counts = SplitService(graph).counts()
    return counts, sum(s.store.events.retained() for s in graph.services)


@pytest.mark.parametrize("crash_after", STEPS)
def test_a_moved_shard_is_served_by_its_new_owner_with_everything_it_held(
    graph: SplitGraph, crash_after: str | None
) -> None:
    shard = 3  # on worker 1
    session = _session_on(graph, shard)
    others = [_session_on(graph, s) for s in (0, 1, 2)]
    history = [e.sequence for e in graph.services[1].store.events.session_events(session)]
    before = shard_state(graph.engines[1], shard, graph._shards())
    totals = _totals(graph)

    graph.move(shard, 0, crash_after=crash_after)

    assert graph.owners[shard] == 0 and graph.epoch == 2
    assert shard_state(graph.engines[1], shard, graph._shards()) == []
    assert shard_state(graph.engines[0], shard, graph._shards()) == before
    assert _totals(graph) == totals
    for service in graph.services:  # read through either worker
        assert service.get_session(session).content == f"on {shard}"
    new_owner = graph.services[0]
    assert [e.sequence for e in new_owner.store.events.session_events(session)] == history
    # New writes go to the new owner, and its events come after the shard's old ones.
    prompt = graph.services[1].create_node(NewNode(NodeKind.PROMPT, session, "again"))
    assert graph.engines[0].get(keys.CF_NODES, graph._shards().prefix(shard) + prompt.id)
    after = new_owner.store.events.session_events(session)
    assert [e.sequence for e in after][: len(history)] == history
    assert len(after) > len(history) and after[-1].sequence > history[-1]
    for other in others:
        assert graph.services[0].get_session(other).id == other


def test_a_catch_up_copies_only_what_changed_since_the_last_copy(graph: SplitGraph) -> None:
    shard = 3
    session = _session_on(graph, shard)
    shards = graph._shards()
    first = sync_shard(graph.engines[1], graph.engines[0], shard, shards)
    assert first > 10
    assert sync_shard(graph.engines[1], graph.engines[0], shard, shards) == 0
    graph.services[1].create_node(NewNode(NodeKind.PROMPT, session, "more"))
    again = sync_shard(graph.engines[1], graph.engines[0], shard, shards)
    assert 0 < again < first
    assert shard_state(graph.engines[0], shard, shards) == shard_state(
        graph.engines[1], shard, shards
    )


def test_counting_in_again_after_a_new_copy_counts_only_the_difference(graph: SplitGraph) -> None:
    """A move cut short after the target counted the shard in, with writes to the shard
    before it runs again (the fence ended with the crash): the second count corrects the
    first instead of adding to it."""
    shard = 3
    session = _session_on(graph, shard)
    shards = graph._shards()
    sync_shard(graph.engines[1], graph.engines[0], shard, shards)
    assert adopt_shard(graph.engines[0], shard, shards, epoch=2)
    assert not adopt_shard(graph.engines[0], shard, shards, epoch=2)  # nothing changed
    graph.services[1].create_node(NewNode(NodeKind.PROMPT, session, "more"))
    sync_shard(graph.engines[1], graph.engines[0], shard, shards)
    assert adopt_shard(graph.engines[0], shard, shards, epoch=2)
    graph.restart(0)
    graph.owners[shard] = 0
    for service in graph.services:
        service.store.reassign(graph.owners)
    graph.services[1].store.release_shard(shard, 2)
    graph.restart(1)
    prompts = SplitService(graph).counts().nodes[NodeKind.PROMPT]
    assert prompts == 2  # the turn's prompt and "more", each once


def test_a_worker_refuses_to_drop_a_shard_it_still_owns(graph: SplitGraph) -> None:
    with pytest.raises(ValueError, match="still this worker's"):
        graph.services[1].store.release_shard(3, 2)


def test_a_worker_refuses_to_count_in_a_shard_it_owns_already(graph: SplitGraph) -> None:
    with pytest.raises(ValueError, match="this worker's already"):
        graph.services[1].store.adopt_shard(3, 2)


def test_a_shard_with_usage_not_yet_reported_is_not_moved(graph: SplitGraph) -> None:
    shard = 3
    _session_on(graph, shard)
    engine = graph.engines[1]
    assert not unreported(engine, shard)  # no reporter ever ran
    store = graph.services[1].store
    store.save_cursor("registry", 0)
    assert unreported(engine, shard)
    store.save_cursor("registry", store.events.last_sequence)
    assert not unreported(engine, shard)


def test_a_session_being_deleted_when_its_shard_moves_is_deleted_for_good(
    graph: SplitGraph,
) -> None:
    """Hidden before the move, its deletion finished by the old owner after it: the new
    owner's copy of the deletion marker goes with the session's last step."""
    shard = 3
    session = _session_on(graph, shard)
    old = graph.services[1]
    with old._writer.transaction() as tx:  # hidden; the steps come later
        tx.hide_sessions.append(session)
    graph.move(shard, 0)
    new = graph.services[0]
    assert new.store.sessions_being_deleted() == [session]
    old.deletion.finish(session)
    for store in (new.store, old.store):
        assert store.sessions_being_deleted() == []
        assert store.get_node(session) is None
    graph.restart(0)
    assert graph.services[0].store.sessions_being_deleted() == []
    again = graph.services[0].create_session(NewSession(session_id=session, title="again"))
    assert graph.services[1].get_session(again.id).content == "again"
    assert SplitService(graph).counts().nodes[NodeKind.PROMPT] == 0
