"""Deletes and archival through the service leave nothing behind in the store, on both engines."""

from __future__ import annotations

from memorygraph.graph.service import GraphService
from memorygraph.model import EdgeKind, NewNode, NewSession, NodeKind, SessionDetails
from memorygraph.store import GraphStore, KeyValueStore
from memorygraph.store.keys import COLUMN_FAMILIES
from memorygraph.store.records import decode_event

from .store_support import _counts, _ekind, _populated, _raw


def _everything(kv: KeyValueStore) -> dict[str, dict[bytes, bytes]]:
    return {cf: _raw(kv, cf) for cf in COLUMN_FAMILIES if cf not in ("events", "meta")}


def test_delete_session_removes_every_index_entry(kv: KeyValueStore) -> None:
    empty = _everything(kv)
    service, ids = _populated(kv)
    assert service.delete_session(ids["session"]) == (5, 8)
    raw = _everything(kv)
    survivors = {ids["keep"], ids["agent"], ids["kept_prompt"]}
    assert set(raw["nodes"]) == survivors
    assert {k[-16:] for k in raw["by_kind"]} == survivors
    assert {k[-17:-1] for k in raw["by_session"]} == {ids["kept_prompt"]}
    assert set(raw["edges_out"]) == {ids["kept_prompt"] + _ekind(EdgeKind.BELONGS_TO) + ids["keep"]}
    assert set(raw["edges_in"]) == {ids["keep"] + _ekind(EdgeKind.BELONGS_TO) + ids["kept_prompt"]}
    counts = service.store.counts()
    assert counts.nodes[NodeKind.PROMPT] == 1 and counts.nodes[NodeKind.RESPONSE] == 0
    assert counts.edges == 1 and counts.active_sessions == 1
    assert counts.tokens.total_tokens == 0
    service.delete_session(ids["keep"])
    service.delete_node(ids["agent"])
    assert _everything(kv) == empty
    assert service.store.counts() == _counts()


def test_archive_then_restore_leaves_the_store_as_it_was(kv: KeyValueStore) -> None:
    """Archival removes a session with every index entry and its history in the log; a
    restore writes back exactly the records, index entries and events there were — but for
    the edge from another session's node, which a restore does not touch."""
    service, ids = _populated(kv)
    before = {cf: _raw(kv, cf) for cf in COLUMN_FAMILIES if cf != "meta"}
    export = service.archive.export_session(ids["session"])
    service.archive.archive_session(ids["session"], content_sha256=export.sha256())
    after = _everything(kv)
    gone = {n.id for n in [export.session, *export.nodes]}
    for cf, entries in after.items():
        assert not any(k[:16] in gone or k[-16:] in gone for k in entries), cf
    marker = [decode_event(int.from_bytes(k), v) for k, v in _raw(kv, "events").items()]
    assert not any(e.session_id == ids["session"] and not e.type.is_lifecycle for e in marker)
    result = service.archive.restore_session(export)
    (skipped,) = result.skipped_edges
    assert (skipped.source_id, skipped.target_id) == (ids["kept_prompt"], ids["response"])
    kind = _ekind(EdgeKind.REFERENCES)
    del before["edges_out"][ids["kept_prompt"] + kind + ids["response"]]
    del before["edges_in"][ids["response"] + kind + ids["kept_prompt"]]
    restored = {cf: _raw(kv, cf) for cf in COLUMN_FAMILIES if cf != "meta"}
    # Everything is back; the log additionally holds the two lifecycle events.
    extra = {k: v for k, v in restored["events"].items() if k not in before["events"]}
    assert [decode_event(int.from_bytes(k), v).type.value for k, v in sorted(extra.items())] == [
        "session_archived",
        "session_restored",
    ]
    restored["events"] = {k: v for k, v in restored["events"].items() if k in before["events"]}
    assert restored == before


def test_last_session_event_time_is_the_newest_retained_event(kv: KeyValueStore) -> None:
    now = [100]
    service = GraphService(GraphStore(kv), clock=lambda: now[0])
    session = service.create_session(NewSession(title="t"))
    prompt = service.create_node(NewNode(NodeKind.PROMPT, session_id=session.id, content="q"))
    now[0] = 200
    service.update_node(prompt.id, content="edited", metadata=None)
    assert service.store.events.last_session_event_time(session.id) == 200
    service.store.events.trim(service.store.events.last_sequence + 1)
    assert service.store.events.last_session_event_time(session.id) == 0


def test_delete_node_removes_its_edges_at_both_ends_and_its_index_entries(
    kv: KeyValueStore,
) -> None:
    service, ids = _populated(kv)
    assert service.delete_node(ids["response"]) == 3  # responds_to, invokes, references
    raw = _everything(kv)
    assert ids["response"] not in raw["nodes"]
    assert all(ids["response"] not in k for cf in raw.values() for k in cf)
    for key in raw["edges_out"]:
        assert key[:16] in raw["nodes"] and key[17:] in raw["nodes"]
    for key in raw["edges_in"]:
        assert key[:16] in raw["nodes"] and key[17:] in raw["nodes"]
    session = service.get_session(ids["session"])
    usage = session.details_as(SessionDetails).token_usage
    assert (usage.prompt_tokens, usage.total_tokens) == (0, 0)
    assert service.store.counts().tokens.total_tokens == 0
