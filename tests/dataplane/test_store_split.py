"""A graph split over workers, each with an engine of its own (`store.split`): every key on the
worker that owns its shard, writes that reach another worker delivered there exactly once (also
after a failure or a restart between the two sides), events in the log of the worker whose
shard they belong to, and another worker's writers held off while a write reaches it."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator

import pytest
from memorygraph.model import (
    AgentDetails,
    Direction,
    EdgeKind,
    EventType,
    NewEdge,
    NewNode,
    NewSession,
    Node,
    NodeKind,
    PromptDetails,
    TemplateDetails,
    TemplateVariable,
)
from memorygraph.store import MemoryStore, keys
from memorygraph.store.split import Busy, SplitKV, decode_part, encode_part

from .split_support import SplitGraph


@pytest.fixture(params=["direct", "grpc"])
def make_graph(request: pytest.FixtureRequest) -> Iterator[Callable[[], SplitGraph]]:
    """Two workers over 8 shards, reaching each other in the process or over gRPC."""
    made: list[SplitGraph] = []

    def make() -> SplitGraph:
        made.append(SplitGraph(count=2, shards=8, transport=request.param))
        return made[-1]

    yield make
    for graph in made:
        graph.close()


def _on_worker(graph: SplitGraph, index: int, title: str = "s") -> bytes:
    """A session made by worker `index` (so on one of its shards)."""
    session = graph.services[index].create_session(NewSession(title=title))
    assert graph.index_of(session.id) == index
    return session.id


def _prompts_on_both(graph: SplitGraph) -> tuple[Node, Node]:
    """A prompt in a session of worker 0 and one in a session of worker 1."""
    a, b = _on_worker(graph, 0, "a"), _on_worker(graph, 1, "b")
    return (
        graph.services[0].create_node(NewNode(NodeKind.PROMPT, a, "q")),
        graph.services[1].create_node(NewNode(NodeKind.PROMPT, b, "r")),
    )


def _keys_everywhere_on_their_owner(graph: SplitGraph) -> None:
    for index, engine in enumerate(graph.engines):
        for cf in keys.SHARDED_FAMILIES:
            for key in engine.scan_keys(cf, b"", b"\xff" * 64):
                shard = int.from_bytes(key[: keys.SHARD_LEN])
                assert shard % graph.count == index, (cf, key.hex())


def _log(graph: SplitGraph, index: int) -> list:  # type: ignore[type-arg]
    return graph.services[index].store.events.read(0, 2**63, 10_000)


def test_ids_a_worker_makes_are_on_its_own_shards(make_graph: Callable[[], SplitGraph]) -> None:
    graph = make_graph()
    for index in (0, 1):
        for _ in range(10):
            session = _on_worker(graph, index)
            prompt = graph.services[index].create_node(NewNode(NodeKind.PROMPT, session, "q"))
            assert graph.index_of(prompt.id) == index
        agent = graph.services[index].create_node(
            NewNode(NodeKind.AGENT, details=AgentDetails(name=f"a{index}"))
        )
        assert graph.index_of(agent.id) == index
    _keys_everywhere_on_their_owner(graph)
    # Each worker lists the sessions of its own shards.
    for index in (0, 1):
        page = graph.services[index].list_sessions(limit=100, page_token="", state=None, user_id="")
        assert len(page.nodes) == 10
        assert {graph.index_of(n.id) for n in page.nodes} == {index}


def test_an_edge_between_workers_is_found_from_both_ends_and_deleted_from_either(
    make_graph: Callable[[], SplitGraph],
) -> None:
    graph = make_graph()
    here, there = graph.services
    a, b = _on_worker(graph, 0, "a"), _on_worker(graph, 1, "b")
    source = here.create_node(NewNode(NodeKind.PROMPT, a, "from here"))
    target = there.create_node(NewNode(NodeKind.PROMPT, b, "to there"))
    edge = here.create_edge(NewEdge(source.id, target.id, EdgeKind.REFERENCES))
    # Read at once on the other worker: the part was delivered before the call returned.
    incoming = there.get_edges(target.id, Direction.INCOMING, [EdgeKind.REFERENCES])
    assert [e.key for e in incoming] == [edge.key]
    assert [e.key for e in here.get_edges(source.id, Direction.OUTGOING, [])][-1] == edge.key
    _keys_everywhere_on_their_owner(graph)
    # The edge's event is in the log of the worker of its source's session.
    assert [e.type for e in _log(graph, 0)].count(EventType.EDGE_CREATED) == 2  # + belongs_to
    # Deleting the target on its worker deletes the edge's record on the other one, and the
    # edge's deletion event goes to the log of the source session's worker.
    assert there.delete_node(target.id) == 2  # its belongs_to edge and the reference
    assert here.get_edges(source.id, Direction.OUTGOING, [EdgeKind.REFERENCES]) == []
    deleted = [e for e in _log(graph, 0) if e.type is EventType.EDGE_DELETED]
    assert [e.edge.key for e in deleted if e.edge is not None] == [edge.key]
    assert all(keys.sequence_shard(e.sequence) % 2 == 0 for e in _log(graph, 0))
    assert all(keys.sequence_shard(e.sequence) % 2 == 1 for e in _log(graph, 1))
    _keys_everywhere_on_their_owner(graph)
    # Counts are each worker's: their sum is the graph's.
    total = sum(s.counts().edges for s in graph.services)
    assert total == 1  # source's belongs_to edge


def test_an_agent_and_a_template_on_another_worker_are_linked_and_instantiated(
    make_graph: Callable[[], SplitGraph],
) -> None:
    graph = make_graph()
    here, there = graph.services
    session = _on_worker(graph, 0)
    agent = there.create_node(NewNode(NodeKind.AGENT, details=AgentDetails(name="planner")))
    here.create_edge(NewEdge(session, agent.id, EdgeKind.HANDLED_BY))
    handled = there.get_edges(agent.id, Direction.INCOMING, [EdgeKind.HANDLED_BY])
    assert [e.source_id for e in handled] == [session]
    name = next(f"t{i}" for i in range(100) if graph.services[0].store.shards.of_name(f"t{i}") % 2)
    template = there.templates.create(
        name=name,
        content="Hello {{who}}",
        variables=[TemplateVariable(name="who")],
        metadata={},
    )
    text, prompt = here.templates.instantiate(
        template_id=None,
        name=name,
        values={"who": "Ada"},
        session_id=session,
        prompt=PromptDetails(),
        metadata={},
    )
    assert text == "Hello Ada" and prompt is not None
    counted = there.templates.get(template_id=template.id)
    assert counted.details_as(TemplateDetails).usage_count == 1
    assert here.templates.get(name=name).id == template.id
    _keys_everywhere_on_their_owner(graph)


def test_a_part_not_delivered_is_delivered_later_exactly_once(
    make_graph: Callable[[], SplitGraph],
) -> None:
    graph = make_graph()
    here, there = graph.services
    source, target = _prompts_on_both(graph)
    graph.peers[0][1].failing = True
    edge = here.create_edge(NewEdge(source.id, target.id, EdgeKind.REFERENCES))  # kept here
    assert there.get_edges(target.id, Direction.INCOMING, [EdgeKind.REFERENCES]) == []
    assert here.store.deliver_outbox() is False
    graph.peers[0][1].failing = False
    # A restart of the writing worker finds its outbox and delivers it.
    here = graph.restart(0)
    assert here.store.deliver_outbox() is True
    incoming = there.get_edges(target.id, Direction.INCOMING, [EdgeKind.REFERENCES])
    assert [e.key for e in incoming] == [edge.key]
    # Delivered again (as after a crash before the entry was removed): applied once.
    sequences = [e.sequence for e in _log(graph, 1)]
    there.store.apply_part(0, 1, encode_part(0, [], []))
    assert [e.sequence for e in _log(graph, 1)] == sequences


def test_a_worker_whose_store_is_made_again_still_has_its_parts_applied(
    make_graph: Callable[[], SplitGraph],
) -> None:
    """A member's lost volume replaced by an empty one numbers its outbox afresh: its parts
    are not taken for ones the other workers applied before."""
    graph = make_graph()
    here, there = graph.services
    for _ in range(3):
        source, target = _prompts_on_both(graph)
        here.create_edge(NewEdge(source.id, target.id, EdgeKind.REFERENCES))
    graph.engines[0].close()
    graph.engines[0] = MemoryStore()
    here = graph.restart(0)
    source = here.create_node(NewNode(NodeKind.PROMPT, _on_worker(graph, 0, "again"), "q"))
    edge = here.create_edge(NewEdge(source.id, target.id, EdgeKind.REFERENCES))
    incoming = there.get_edges(target.id, Direction.INCOMING, [EdgeKind.REFERENCES])
    assert edge.key in [e.key for e in incoming]


def test_a_part_applied_twice_changes_nothing_the_second_time(
    make_graph: Callable[[], SplitGraph],
) -> None:
    graph = make_graph()
    here, there = graph.services
    source, target = _prompts_on_both(graph)
    seen: list[tuple[int, int, bytes]] = []
    apply = graph.peers[0][1].apply

    def recording(origin: int, sequence: int, part: bytes, *, locked: bool) -> None:
        seen.append((origin, sequence, part))
        apply(origin, sequence, part, locked=locked)

    graph.peers[0][1].apply = recording  # type: ignore[method-assign]
    here.create_edge(NewEdge(source.id, target.id, EdgeKind.REFERENCES))
    here.delete_node(source.id)  # its edge's pointer goes, in a later entry
    (first, _), (second, _) = [(s, p) for _, s, p in seen]
    assert first < second
    before = {cf: list(graph.engines[1].scan(cf, b"", b"\xff" * 64)) for cf in keys.COLUMN_FAMILIES}
    there.store.apply_part(0, first, seen[0][2])  # an old entry again: its put stays undone
    after = {cf: list(graph.engines[1].scan(cf, b"", b"\xff" * 64)) for cf in keys.COLUMN_FAMILIES}
    assert after == before
    assert there.get_edges(target.id, Direction.INCOMING, []) == [
        e for e in there.get_edges(target.id, Direction.INCOMING, []) if e.source_id != source.id
    ]


def test_a_write_reaching_a_busy_worker_fails_with_nothing_written(
    make_graph: Callable[[], SplitGraph],
) -> None:
    graph = make_graph()
    here, there = graph.services
    source, target = _prompts_on_both(graph)
    there.endpoint.lock_timeout = 0.2
    there.endpoint.lock(0)  # another write holds worker 1's writers
    before = list(graph.engines[0].scan(keys.CF_EDGES_OUT, b"", b"\xff" * 64))
    try:
        with pytest.raises(Busy, match="try again"):
            here.create_edge(NewEdge(source.id, target.id, EdgeKind.REFERENCES))
    finally:
        there.endpoint.unlock()
    assert list(graph.engines[0].scan(keys.CF_EDGES_OUT, b"", b"\xff" * 64)) == before
    # Worker 0's own writes were not held up by the failed one.
    assert source.session_id is not None
    here.create_node(NewNode(NodeKind.PROMPT, source.session_id, "still writing"))
    here.create_edge(NewEdge(source.id, target.id, EdgeKind.REFERENCES))


def test_a_write_holds_off_the_other_workers_writes_until_it_is_delivered(
    make_graph: Callable[[], SplitGraph],
) -> None:
    """Worker 0 instantiating worker 1's template holds worker 1's writers from its first read
    there until its part is applied: a concurrent instantiation cannot lose the count."""
    graph = make_graph()
    there = graph.services[1]
    session = _on_worker(graph, 0)
    name = next(f"t{i}" for i in range(100) if graph.services[0].store.shards.of_name(f"t{i}") % 2)
    template = there.templates.create(name=name, content="x", variables=[], metadata={})
    other = _on_worker(graph, 1)
    errors: list[BaseException] = []

    def instantiate(service_index: int, session_id: bytes) -> None:
        try:
            for _ in range(20):
                graph.services[service_index].templates.instantiate(
                    template_id=template.id,
                    name="",
                    values={},
                    session_id=session_id,
                    prompt=PromptDetails(),
                    metadata={},
                )
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [
        threading.Thread(target=instantiate, args=(0, session)),
        threading.Thread(target=instantiate, args=(1, other)),
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    counted = there.templates.get(template_id=template.id)
    assert counted.details_as(TemplateDetails).usage_count == 40


def test_parts_round_trip() -> None:
    ops = [("nodes", b"\x00\x01abc", b"value"), ("edges_in", b"\x00\x03k", None)]
    time, got, events = decode_part(encode_part(123, ops, []))
    assert (time, got, events) == (123, ops, [])


def test_a_worker_scans_its_shards_and_reads_others_through_its_peers(
    make_graph: Callable[[], SplitGraph],
) -> None:
    graph = make_graph()
    for index in (0, 1):
        for i in range(3):
            _on_worker(graph, index, f"w{index}-{i}")
    kv = graph.services[0].store.kv
    assert isinstance(kv, SplitKV)
    everything = list(kv.scan(keys.CF_NODES, b"", b"\xff" * 64))
    assert len(everything) == 6
    assert list(kv.scan(keys.CF_NODES, b"", b"\xff" * 64, reverse=True)) == everything[::-1]
    assert [k for k, _ in everything] == list(kv.scan_keys(keys.CF_NODES, b"", b"\xff" * 64))
    key_of = {value: key for key, value in everything}
    values = kv.scan_value_chunks(
        keys.CF_NODES, b"", b"\xff" * 64, resume=lambda value: key_of[value] + b"\x00", first=1
    )
    assert [v for chunk in values for v in chunk] == [v for _, v in everything]


def test_a_busy_worker_met_while_committing_fails_the_write_as_unavailable(
    make_graph: Callable[[], SplitGraph],
) -> None:
    """The first key a write touches on another worker may be one its commit writes (an
    edge's pointer on the target's worker): Busy there too, never an internal error."""
    graph = make_graph()
    here, there = graph.services
    source, target = _prompts_on_both(graph)
    here.create_edge(NewEdge(source.id, target.id, EdgeKind.REFERENCES))
    there.endpoint.lock_timeout = 0.2
    there.endpoint.lock(0)
    try:
        with pytest.raises(Busy, match="try again"):
            here.delete_edge(source.id, target.id, EdgeKind.REFERENCES)
    finally:
        there.endpoint.unlock()
    assert here.get_edges(source.id, Direction.OUTGOING, [EdgeKind.REFERENCES])
    here.delete_edge(source.id, target.id, EdgeKind.REFERENCES)
    assert there.get_edges(target.id, Direction.INCOMING, [EdgeKind.REFERENCES]) == []


def test_a_write_that_fails_on_its_own_worker_is_never_delivered(
    make_graph: Callable[[], SplitGraph], monkeypatch: pytest.MonkeyPatch
) -> None:
    graph = make_graph()
    here = graph.services[0]
    source, target = _prompts_on_both(graph)
    engine = graph.engines[0]
    write = engine.write

    def full_disk(ops: list, *, sync: bool) -> None:  # type: ignore[type-arg]
        raise OSError("no space left on device")

    monkeypatch.setattr(engine, "write", full_disk)
    with pytest.raises(OSError):
        here.create_edge(NewEdge(source.id, target.id, EdgeKind.REFERENCES))
    monkeypatch.setattr(engine, "write", write)
    assert here.store.deliver_outbox()
    pointers = list(graph.engines[1].scan_keys(keys.CF_EDGES_IN, b"", b"\xff" * 64))
    assert not [key for key in pointers if source.id in key]
    assert not [
        e for e in _log(graph, 1) if e.edge is not None and e.edge.kind is EdgeKind.REFERENCES
    ]


def test_two_workers_writing_towards_each_other_never_wait_out_the_lock_timeout(
    make_graph: Callable[[], SplitGraph],
) -> None:
    """Edges made at the same time from worker 0 to worker 1 and from worker 1 to worker 0:
    when each write holds its own worker's lock and asks for the other's, the worker with the
    higher number gives up at once (Busy, retried here) rather than both waiting 2 s."""
    graph = make_graph()
    a, b = _on_worker(graph, 0, "a"), _on_worker(graph, 1, "b")
    mine = [graph.services[0].create_node(NewNode(NodeKind.PROMPT, a, f"a{i}")) for i in range(5)]
    theirs = [graph.services[1].create_node(NewNode(NodeKind.PROMPT, b, f"b{i}")) for i in range(5)]
    slow: list[float] = []
    made = [0, 0]

    def link(worker: int, sources: list, targets: list) -> None:  # type: ignore[type-arg]
        service = graph.services[worker]
        for source in sources:
            for target in targets:
                while True:
                    began = time.monotonic()
                    try:
                        service.create_edge(NewEdge(source.id, target.id, EdgeKind.REFERENCES))
                    except Busy:
                        if time.monotonic() - began > 1.0:
                            slow.append(time.monotonic() - began)
                        continue
                    made[worker] += 1
                    break

    threads = [
        threading.Thread(target=link, args=(0, mine, theirs)),
        threading.Thread(target=link, args=(1, theirs, mine)),
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
    assert made == [25, 25]
    assert slow == []
    _keys_everywhere_on_their_owner(graph)
