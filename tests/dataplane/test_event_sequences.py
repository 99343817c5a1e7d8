"""Event sequence numbers: a tick that only moves forward and the event's shard in the low bits,
so that logs of processes serving different shards never number two events alike; and the
log's count of events kept exact through trimming in steps."""

from __future__ import annotations

import pytest
from memorygraph.graph.service import GraphService
from memorygraph.model import AgentDetails, EdgeKind, NewEdge, NewNode, NewSession, NodeKind
from memorygraph.store import GraphStore, MemoryStore, eventlog, keys
from memorygraph.store.shards import Shards

START = keys.SEQUENCE_EPOCH + 1_000_000  # a second into the tick's epoch


def _service(clock: list[int], shards: int = 64) -> GraphService:
    """A service whose clock reads the last value of `clock` (tests move it)."""
    return GraphService(GraphStore(MemoryStore(), shards=shards), clock=lambda: clock[-1])


def _sequences(service: GraphService) -> list[int]:
    return [e.sequence for e in service.store.events.read(0, 2**63, 10_000)]


def test_the_tick_follows_the_clock_and_never_goes_back() -> None:
    clock = [START]
    service = _service(clock)
    service.create_session(NewSession(title="now"))
    (first,) = _sequences(service)
    assert keys.sequence_tick(first) == START - keys.SEQUENCE_EPOCH
    clock.append(START - 500_000)  # the clock is set back half a second
    service.create_session(NewSession(title="earlier"))
    clock.append(START + 2_000_000)
    service.create_session(NewSession(title="later"))
    first, second, third = _sequences(service)
    assert keys.sequence_tick(second) == keys.sequence_tick(first) + 1
    assert keys.sequence_tick(third) == START + 2_000_000 - keys.SEQUENCE_EPOCH
    # Reopened, the log goes on after its newest event whatever the clock says.
    clock.append(START)
    reopened = GraphService(GraphStore(service.store.kv), clock=lambda: clock[-1])
    reopened.create_session(NewSession(title="after a restart"))
    assert _sequences(reopened)[-1] > third


def test_every_event_carries_the_shard_it_belongs_to() -> None:
    clock = [START]
    service = _service(clock)
    shards = Shards(64)
    session = service.create_session(NewSession(title="s"))
    prompt = service.create_node(NewNode(NodeKind.PROMPT, session.id, "q"))
    planner = service.create_node(NewNode(NodeKind.AGENT, details=AgentDetails(name="planner")))
    critic = service.create_node(NewNode(NodeKind.AGENT, details=AgentDetails(name="critic")))
    service.create_edge(NewEdge(planner.id, critic.id, EdgeKind.REFERENCES))
    service.create_edge(NewEdge(prompt.id, planner.id, EdgeKind.REFERENCES))
    events = service.store.events.read(0, 2**63, 100)
    for event in events:
        if event.session_id is not None:
            expected = shards.of_id(event.session_id)  # the session's, edges to agents too
        elif event.node is not None:
            expected = shards.of_id(event.node.id)  # a global node's own
        else:
            assert event.edge is not None
            expected = shards.of_id(event.edge.source_id)  # between global nodes: the source's
        assert keys.sequence_shard(event.sequence) == expected
    assert {keys.sequence_shard(e.sequence) for e in events} >= {
        shards.of_id(session.id),
        shards.of_id(planner.id),
        shards.of_id(critic.id),
    }
    sequences = [e.sequence for e in events]
    assert sequences == sorted(set(sequences))


def test_many_events_of_one_change_get_ticks_of_their_own() -> None:
    """A change of many events at one clock reading: each event's tick is one past the one
    before, so sequences of one shard never repeat."""
    clock = [START]
    service = _service(clock, shards=1)
    session = service.create_session(NewSession(title="s"))
    for i in range(5):
        service.create_node(NewNode(NodeKind.PROMPT, session.id, f"q{i}"))
    ticks = [keys.sequence_tick(s) for s in _sequences(service)]
    assert ticks == list(range(ticks[0], ticks[0] + len(ticks)))
    assert {keys.sequence_shard(s) for s in _sequences(service)} == {0}


def test_trimming_in_steps_keeps_the_count_exact(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(eventlog, "TRIM_STEP", 4)
    clock = [START]
    service = _service(clock)
    session = service.create_session(NewSession(title="s"))
    for i in range(10):
        service.create_node(NewNode(NodeKind.PROMPT, session.id, f"q{i}"))
    log = service.store.events
    sequences = _sequences(service)
    log.trim(sequences[11])
    assert log.floor() == sequences[10] + 1  # one past the newest event trimmed
    assert log.retained() == len(sequences) - 11 == len(_sequences(service))
    assert GraphStore(service.store.kv).events.retained() == len(sequences) - 11


def test_a_crash_between_a_trim_step_and_its_deletion_counts_nothing_twice(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A step records its floor and count, then deletes below the floor: after a crash in
    between, the events left below the floor are not counted again by the next trim."""
    monkeypatch.setattr(eventlog, "TRIM_STEP", 3)
    clock = [START]
    service = _service(clock)
    session = service.create_session(NewSession(title="s"))
    for i in range(6):
        service.create_node(NewNode(NodeKind.PROMPT, session.id, f"q{i}"))
    kv = service.store.kv
    sequences = _sequences(service)

    def crash(*args: object) -> None:
        raise OSError("crash")

    monkeypatch.setattr(kv, "delete_range", crash)
    with pytest.raises(OSError):
        service.store.events.trim(sequences[5])
    monkeypatch.undo()
    reopened = GraphStore(kv)
    assert reopened.events.floor() == sequences[2] + 1  # the first step was recorded
    reopened.events.trim(sequences[5])
    stored = sum(1 for _ in kv.scan_keys(keys.CF_EVENTS, b"", b"\xff" * 9))
    assert reopened.events.retained() == stored == len(sequences) - 5


def test_the_outbox_depth_counts_events_up_to_a_cap() -> None:
    clock = [START]
    service = _service(clock)
    session = service.create_session(NewSession(title="s"))
    for i in range(4):
        service.create_node(NewNode(NodeKind.PROMPT, session.id, f"q{i}"))
    log, sequences = service.store.events, _sequences(service)
    assert log.count_between(sequences[1], sequences[-1], 100) == len(sequences) - 1
    assert log.count_between(sequences[1], sequences[-1], 3) == 3
    assert log.count_between(sequences[-1] + 1, 2**63, 100) == 0
