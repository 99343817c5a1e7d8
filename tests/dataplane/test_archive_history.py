"""What archival and restore leave in the event log: indexes, floors, counts, skipped history."""

from __future__ import annotations

from typing import Any

import pytest
from memorygraph.errors import AlreadyExists
from memorygraph.graph.export import decode_export
from memorygraph.graph.service import GraphService
from memorygraph.model import EdgeKind, NewEdge, NewNode, NewSession, NodeKind
from memorygraph.store import GraphStore, MemoryStore, keys

from .archive_support import _service
from .store_support import _unshard


def test_schema_1_store_gets_its_session_event_index_on_open() -> None:
    kv = MemoryStore()
    service = GraphService(GraphStore(kv))
    session = service.create_session(NewSession(title="old"))
    service.create_node(NewNode(NodeKind.PROMPT, session_id=session.id, content="q"))
    before = service.store.events.session_sequences(session.id)
    # What a schema-1 directory looks like: no shards, no session-event index, version 1.
    _unshard(kv)
    kv.delete_range(keys.CF_SESSION_EVENTS, b"", b"\xff" * 17)
    kv.write([(keys.CF_META, keys.SCHEMA_VERSION_KEY, b"1")], sync=True)
    assert (
        kv.get(keys.CF_SESSION_EVENTS, keys.session_event_key(b"", session.id, before[0])) is None
    )
    reopened = GraphStore(kv)
    assert reopened.schema_version == keys.SCHEMA_VERSION
    assert kv.get(keys.CF_META, keys.SCHEMA_VERSION_KEY) == str(keys.SCHEMA_VERSION).encode()
    assert reopened.events.session_sequences(session.id) == before


def test_a_trimmed_schema_1_log_keeps_its_retention_floor_after_the_upgrade() -> None:
    kv = MemoryStore()
    service = GraphService(GraphStore(kv))
    session = service.create_session(NewSession(title="old"))
    for i in range(4):
        service.create_node(NewNode(NodeKind.PROMPT, session_id=session.id, content=f"q{i}"))
    total = service.store.events.retained()
    third = service.store.events.read(0, 2**63, 3)[-1].sequence
    # Schema 1 trimmed the log without recording a floor.
    _unshard(kv)
    kv.delete_range(keys.CF_EVENTS, keys.event_key(0), keys.event_key(third))
    kv.delete_range(keys.CF_SESSION_EVENTS, b"", b"\xff" * 17)
    kv.write([(keys.CF_META, keys.SCHEMA_VERSION_KEY, b"1")], sync=True)
    reopened = GraphStore(kv)
    assert reopened.events.floor() == third
    assert reopened.events.retained() == total - 2


def test_restoring_twice_is_idempotent_when_history_could_not_come_back() -> None:
    """Events below the retention floor and edges to nodes gone are skipped by a restore; a
    second restore of the same archive finds the session back, not "differing"."""
    service = _service()
    other = service.create_session(NewSession(title="other"))
    target = service.create_node(NewNode(NodeKind.PROMPT, session_id=other.id, content="x"))
    session = service.create_session(NewSession(title="t"))
    prompt = service.create_node(NewNode(NodeKind.PROMPT, session_id=session.id, content="q"))
    service.create_edge(NewEdge(prompt.id, target.id, EdgeKind.REFERENCES))
    export = service.archive.export_session(session.id)
    service.archive.archive_session(session.id, content_sha256=export.sha256())
    service.delete_session(other.id)
    service.store.events.trim(service.store.events.last_sequence + 1)
    first = service.archive.restore_session(export)
    assert (first.skipped_events, len(first.skipped_edges)) == (len(export.events), 1)
    again = service.archive.restore_session(export)
    assert again.already_present
    service.create_node(NewNode(NodeKind.PROMPT, session_id=session.id, content="more"))
    with pytest.raises(AlreadyExists, match="differs from the archive"):
        service.archive.restore_session(export)


def _events_in_log(store: GraphStore) -> int:
    """The events the log holds from its floor on, counted key by key."""
    start = keys.event_key(store.events.floor())
    return sum(1 for _ in store.kv.scan_keys(keys.CF_EVENTS, start, keys.event_key(2**63)))


def test_the_retained_event_count_leaves_out_what_archival_erased_and_trimming_removed() -> None:
    kv = MemoryStore()
    service = GraphService(GraphStore(kv))
    sessions = []
    for title in ("a", "b", "c"):
        session = service.create_session(NewSession(title=title))
        for i in range(3):
            service.create_node(NewNode(NodeKind.PROMPT, session_id=session.id, content=f"q{i}"))
        sessions.append(session.id)
    store = service.store
    total = _events_in_log(store)
    assert store.events.retained() == total == len(store.events.read(0, 2**63, 1000))

    def archive(session_id: bytes) -> None:
        export = service.archive.export_session(session_id)
        service.archive.archive_session(session_id, content_sha256=export.sha256())

    exports = [service.archive.export_session(sessions[0])]
    archive(sessions[0])  # its events leave the log; one SESSION_ARCHIVED comes in
    erased = len(exports[0].events)
    assert store.events.retained() == _events_in_log(store) == total - erased + 1
    service.archive.restore_session(exports[0])  # the events go back into their holes
    assert store.events.retained() == _events_in_log(store)
    archive(sessions[0])
    archive(sessions[1])
    first, second = store.events.session_sequences(sessions[2])[:2]
    store.events.trim(second)  # what was below the new floor stops counting
    assert store.events.retained() == _events_in_log(store)
    floor = store.events.floor()
    assert first < floor <= second  # one past the newest event trimmed
    store.events.trim(first)  # never moves the floor down
    assert store.events.floor() == floor
    archive(sessions[2])  # its first event was trimmed already: not counted twice
    assert store.events.retained() == _events_in_log(store)
    session = service.create_session(NewSession(title="d"))
    service.create_node(NewNode(NodeKind.PROMPT, session_id=session.id, content="late"))
    expected = _events_in_log(store)
    assert store.events.retained() == expected > 0
    assert GraphStore(kv).events.retained() == expected
    # A store from before the count was kept (schema 5) counts its log once, when opened.
    kv.write(
        [
            (keys.CF_META, keys.EVENT_COUNT_KEY, None),
            (keys.CF_META, keys.EVENT_TRIMMED_KEY, None),
            (keys.CF_META, keys.EVENT_HOLES_KEY, b"\x00" * 8),
            (keys.CF_META, keys.SCHEMA_VERSION_KEY, b"5"),
        ],
        sync=True,
    )
    assert GraphStore(kv).events.retained() == expected
    assert kv.get(keys.CF_META, keys.EVENT_HOLES_KEY) is None
    store.events.trim(store.events.last_sequence + 1)
    assert store.events.retained() == 0


def test_a_trim_while_a_restore_is_under_way_keeps_the_count_exact(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Retention does not wait for the writers' lock: it may move the floor past events a
    restore has chosen and not yet written. Those stay out, and the count stays exact."""
    service = _service()
    store = service.store
    session = service.create_session(NewSession(title="t"))
    for i in range(3):
        service.create_node(NewNode(NodeKind.PROMPT, session_id=session.id, content=f"q{i}"))
    export = service.archive.export_session(session.id)
    service.archive.archive_session(session.id, content_sha256=export.sha256())
    choose = store.events.restorable

    def chosen_then_trimmed(events: list[Any], log_id: str) -> list[Any]:
        found = choose(events, log_id)
        store.events.trim(store.events.last_sequence + 1)
        return found

    monkeypatch.setattr(store.events, "restorable", chosen_then_trimmed)
    service.archive.restore_session(export)
    assert store.events.retained() == _events_in_log(store) == 1  # SESSION_RESTORED


def test_history_from_another_servers_log_is_not_written_into_this_one() -> None:
    """Sequence numbers belong to one log: restored elsewhere, a session comes back without its
    events, even where this log has holes at those very numbers (the export from elsewhere is
    given the numbers archival erased here)."""
    here, there = _service(), _service()
    for service in (here, there):
        session = service.create_session(NewSession(title="same shape"))
        service.create_node(NewNode(NodeKind.PROMPT, session_id=session.id, content="q"))
    archived_here = here.list_sessions(limit=1, page_token="", state=None, user_id="").nodes[0]
    export_here = here.archive.export_session(archived_here.id)
    here.archive.archive_session(
        archived_here.id, content_sha256=export_here.sha256()
    )  # holes 1..3
    source = there.list_sessions(limit=1, page_token="", state=None, user_id="").nodes[0]
    export = there.archive.export_session(source.id)
    assert here.store.events.log_id != there.store.events.log_id
    assert len(export.events) == len(export_here.events)
    for event, erased in zip(export.events, export_here.events, strict=True):
        event.sequence = erased.sequence
    result = here.archive.restore_session(decode_export(export.encode()))
    assert (result.nodes, result.events, result.skipped_events) == (2, 0, len(export.events))
    assert here.store.events.session_events(source.id) == []
    assert here.archive.restore_session(decode_export(export.encode())).already_present
