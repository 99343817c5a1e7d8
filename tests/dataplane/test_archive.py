"""Archival: the export format, the archive RPCs, and `memorygraph archive` against a real
Data-Vault HTTP server (tests/dataplane/vault_server.py), including kills at every step."""

from __future__ import annotations

import datetime as dt
import json
import os
import signal
import subprocess
import sys
from collections.abc import Callable, Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from memorygraph.archive import bundle
from memorygraph.archive.bundle import ArchiveError, RetentionPolicy, decompress
from memorygraph.archive.cli import parse_duration
from memorygraph.archive.job import Destination, RunSummary, run_archival
from memorygraph.archive.vault import VaultDestination
from memorygraph.client import Client
from memorygraph.errors import AlreadyExists, FailedPrecondition, InvalidArgument, NotFound
from memorygraph.graph.export import decode_export
from memorygraph.graph.service import GraphService
from memorygraph.model import EdgeKind, NewEdge, NewNode, NewSession, NodeKind
from memorygraph.server import RunningServer
from memorygraph.store import GraphStore, MemoryStore, keys
from memorygraph.v1 import graph_pb2 as pb

from .conftest import REPO, ServerProcess
from .vault_server import DataVault

Start = Callable[..., RunningServer]
TOKEN = "vault-token"


@pytest.fixture
def vault(tmp_path: Path) -> Iterator[DataVault]:
    server = DataVault(tmp_path / "vault", token=TOKEN).start()
    yield server
    server.stop()


def record_session(mg: Client, title: str, *, close: bool = True, turns: int = 2) -> str:
    session = mg.create_session(title=title, user_id="u-1", model="m", metadata={"team": "a"})
    for i in range(turns):
        prompt = mg.add_prompt(session.id, f"{title} question {i}", model="m")
        response = mg.add_response(prompt.id, f"answer {i}", token_usage=(10 + i, 5))
        mg.add_tool_invocation(response.id, tool_name="search", arguments='{"q": 1}')
    if close:
        mg.close_session(session.id)
    return str(session.id)


def archive_all(
    mg: Client,
    destination: Destination,
    *,
    policy: RetentionPolicy,
    progress: Callable[[str], None] = lambda _: None,
    **more: Any,
) -> RunSummary:
    """A run that takes every session closed or idle until now."""
    return run_archival(
        mg,
        destination,
        older_than=dt.timedelta(0),
        policy=policy,
        source="test",
        progress=progress,
        **more,
    )


# -- the export format -----------------------------------------------------------------------


def _service() -> GraphService:
    return GraphService(GraphStore(MemoryStore()))


def test_export_is_canonical_and_decodes_to_itself() -> None:
    service = _service()
    session = service.create_session(NewSession(title="ünïcode", metadata={"k": "v"}))
    service.create_node(NewNode(NodeKind.PROMPT, session_id=session.id, content="q"))
    data = service.archive.export_session(session.id).encode()
    assert service.archive.export_session(session.id).encode() == data
    assert decode_export(data).encode() == data
    header = json.loads(data.splitlines()[0])
    assert header == {
        "format": "memorygraph.session",
        "version": 1,
        "session_id": header["session_id"],
        "nodes": 1,
        "edges": 1,
        "events": 3,
        "log": service.store.events.log_id,
    }


@pytest.mark.parametrize(
    ("damage", "message"),
    [
        (lambda d: d[:-40], "not JSON"),
        (lambda d: b"\n".join(d.splitlines()[:-1]) + b"\n", "truncated"),
        (lambda d: d.replace(b'"version":1', b'"version":7'), "version 7 is not supported"),
        (lambda d: d.replace(b'"kind":"prompt"', b'"kind":"poem"'), "unknown node kind"),
        (lambda d: d.replace(b"\n", b"\n\n", 1), "not JSON"),
        (lambda d: d.replace(b'"content":"q"', b'"content": "q"'), "canonical"),
        (lambda d: b"", "empty"),
        (lambda d: d.replace(b'"state":"active"', b'"state":"asleep"', 1), "no valid state"),
    ],
)
def test_damaged_exports_are_refused_with_the_reason(
    damage: Callable[[bytes], bytes], message: str
) -> None:
    service = _service()
    session = service.create_session(NewSession(title="t"))
    service.create_node(NewNode(NodeKind.PROMPT, session_id=session.id, content="q"))
    data = service.archive.export_session(session.id).encode()
    with pytest.raises(InvalidArgument, match=message):
        decode_export(damage(data))


def test_exports_with_records_of_other_sessions_are_refused() -> None:
    """Canonical but not a session's export: restore would write them into the graph."""
    service = _service()
    other = service.create_session(NewSession(title="other"))
    a = service.create_node(NewNode(NodeKind.PROMPT, session_id=other.id, content="a"))
    b = service.create_node(NewNode(NodeKind.PROMPT, session_id=other.id, content="b"))
    session = service.create_session(NewSession(title="t"))
    service.create_node(NewNode(NodeKind.PROMPT, session_id=session.id, content="q"))
    foreign = service.archive.export_session(other.id)
    stray = next(e for e in foreign.edges if {e.source_id, e.target_id} == {a.id, b.id})

    def crafted(**change: Any) -> bytes:
        export = service.archive.export_session(session.id)
        return replace(export, **change).encode()

    export = service.archive.export_session(session.id)
    with pytest.raises(InvalidArgument, match="does not touch session"):
        decode_export(crafted(edges=[*export.edges, stray]))
    with pytest.raises(InvalidArgument, match="belongs to session"):
        decode_export(crafted(events=[*export.events, foreign.events[-1]]))
    with pytest.raises(InvalidArgument, match="twice"):
        decode_export(crafted(events=[*export.events, export.events[-1]]))


def test_schema_1_store_gets_its_session_event_index_on_open() -> None:
    kv = MemoryStore()
    service = GraphService(GraphStore(kv))
    session = service.create_session(NewSession(title="old"))
    service.create_node(NewNode(NodeKind.PROMPT, session_id=session.id, content="q"))
    before = service.store.events.session_sequences(session.id)
    # What a schema-1 directory looks like: no session-event index, version 1.
    kv.delete_range(keys.CF_SESSION_EVENTS, b"", b"\xff" * 17)
    kv.write([(keys.CF_META, keys.SCHEMA_VERSION_KEY, b"1")], sync=True)
    assert kv.get(keys.CF_SESSION_EVENTS, keys.session_event_key(session.id, before[0])) is None
    reopened = GraphStore(kv)
    assert reopened.schema_version == keys.SCHEMA_VERSION
    assert kv.get(keys.CF_META, keys.SCHEMA_VERSION_KEY) == str(keys.SCHEMA_VERSION).encode()
    assert reopened.events.session_sequences(session.id) == before


def test_a_session_written_to_after_the_cutoff_is_no_candidate() -> None:
    """An update to an earlier node, or a new edge, is a write like any other."""
    now = [1_000]
    service = GraphService(GraphStore(MemoryStore()), clock=lambda: now[0])
    session = service.create_session(NewSession(title="t"))
    first = service.create_node(NewNode(NodeKind.PROMPT, session_id=session.id, content="a"))
    now[0] += 10
    second = service.create_node(NewNode(NodeKind.PROMPT, session_id=session.id, content="b"))
    now[0] += 1_000
    cutoff = now[0] - 500
    assert [
        c.session.id
        for c in service.archive.candidates(older_than=cutoff, limit=0, page_token="")[0]
    ] == [session.id]
    service.update_node(first.id, content="edited", metadata=None)
    assert service.archive.candidates(older_than=cutoff, limit=0, page_token="")[0] == []
    now[0] += 1_000
    cutoff = now[0] - 500
    service.create_edge(NewEdge(second.id, first.id, EdgeKind.REFERENCES))
    assert service.archive.candidates(older_than=cutoff, limit=0, page_token="")[0] == []


def test_a_trimmed_schema_1_log_keeps_its_retention_floor_after_the_upgrade() -> None:
    kv = MemoryStore()
    service = GraphService(GraphStore(kv))
    session = service.create_session(NewSession(title="old"))
    for i in range(4):
        service.create_node(NewNode(NodeKind.PROMPT, session_id=session.id, content=f"q{i}"))
    # Schema 1 trimmed the log without recording a floor.
    kv.delete_range(keys.CF_EVENTS, keys.event_key(0), keys.event_key(3))
    kv.delete_range(keys.CF_SESSION_EVENTS, b"", b"\xff" * 17)
    kv.write([(keys.CF_META, keys.SCHEMA_VERSION_KEY, b"1")], sync=True)
    reopened = GraphStore(kv)
    assert reopened.events.floor() == 3


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
    assert store.events.retained() == _events_in_log(store) == store.events.last_sequence

    def archive(session_id: bytes) -> None:
        export = service.archive.export_session(session_id)
        service.archive.archive_session(session_id, content_sha256=export.sha256())

    exports = [service.archive.export_session(sessions[0])]
    archive(sessions[0])  # its events leave holes in the sequence numbers
    assert store.events.retained() == _events_in_log(store) < store.events.last_sequence
    service.archive.restore_session(exports[0])  # the events go back into their holes
    assert store.events.retained() == _events_in_log(store)
    archive(sessions[0])
    archive(sessions[1])
    first, second = store.events.session_sequences(sessions[2])[:2]
    store.events.trim(second)  # the holes below the new floor stop counting
    assert store.events.retained() == _events_in_log(store)
    store.events.trim(first)  # never moves the floor down
    assert store.events.floor() == second
    archive(sessions[2])  # its first event was trimmed already: not a hole
    assert store.events.retained() == _events_in_log(store)
    session = service.create_session(NewSession(title="d"))
    service.create_node(NewNode(NodeKind.PROMPT, session_id=session.id, content="late"))
    expected = _events_in_log(store)
    assert store.events.retained() == expected > 0
    assert GraphStore(kv).events.retained() == expected
    # A store from before the count was kept counts its log once, when opened.
    kv.write([(keys.CF_META, keys.EVENT_HOLES_KEY, None)], sync=True)
    assert GraphStore(kv).events.retained() == expected
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


def _meanwhile(service: GraphService, session: bytes, change: Callable[[], object]) -> list[int]:
    """Make `change` right after the first export of `session` (before ArchiveSession takes
    the writers' lock, as a concurrent writer could); returns how many exports of it follow."""
    exported: list[int] = []
    export = service.archive._export

    def export_then_change(session_id: bytes) -> Any:
        found = export(session_id)
        if session_id == session:
            exported.append(1)
            if len(exported) == 1:
                change()
        return found

    service.archive._export = export_then_change  # type: ignore[method-assign]
    return exported


def _archivable_pair() -> tuple[GraphService, bytes, bytes, bytes, str]:
    """A service with a session to archive (one prompt) and another session with a prompt."""
    service = _service()
    session = service.create_session(NewSession(title="archive me"))
    prompt = service.create_node(NewNode(NodeKind.PROMPT, session_id=session.id, content="q"))
    other = service.create_session(NewSession(title="other"))
    elsewhere = service.create_node(NewNode(NodeKind.PROMPT, session_id=other.id, content="x"))
    return (
        service,
        session.id,
        prompt.id,
        elsewhere.id,
        service.archive.export_session(session.id).sha256(),
    )


@pytest.mark.parametrize("change", ["new prompt", "edge from another session", "node updated"])
def test_a_change_made_while_archival_exports_keeps_the_session(change: str) -> None:
    service, session, prompt, elsewhere, digest = _archivable_pair()
    changes: dict[str, Callable[[], object]] = {
        "new prompt": lambda: service.create_node(
            NewNode(NodeKind.PROMPT, session_id=session, content="late")
        ),
        "edge from another session": lambda: service.create_edge(
            NewEdge(elsewhere, prompt, EdgeKind.REFERENCES)
        ),
        "node updated": lambda: service.update_node(prompt, content="edited", metadata=None),
    }
    exported = _meanwhile(service, session, changes[change])
    with pytest.raises(FailedPrecondition, match="changed since it was exported"):
        service.archive.archive_session(session, content_sha256=digest)
    assert len(exported) == 2  # checked again under the lock
    assert service.get_session(session).id == session
    assert service.get_node(prompt).session_id == session  # nothing of it was deleted


def test_archival_exports_once_when_nothing_of_the_session_changed_meanwhile() -> None:
    service, session, _prompt, elsewhere, digest = _archivable_pair()
    other = service.get_node(elsewhere).session_id
    assert other is not None
    exported = _meanwhile(
        service,
        session,
        lambda: service.create_node(NewNode(NodeKind.PROMPT, session_id=other, content="y")),
    )
    archived = service.archive.archive_session(session, content_sha256=digest)
    assert len(exported) == 1 and archived.sha256() == digest
    with pytest.raises(NotFound):
        service.get_session(session)


def test_another_archival_meanwhile_makes_archival_check_again_and_go_on() -> None:
    """Archival and restore write no events for what they remove or bring back, so either
    one in between sends the check back to a full export under the lock."""
    service, session, _prompt, elsewhere, digest = _archivable_pair()
    other = service.get_node(elsewhere).session_id
    assert other is not None
    other_digest = service.archive.export_session(other).sha256()
    exported = _meanwhile(
        service,
        session,
        lambda: service.archive.archive_session(other, content_sha256=other_digest),
    )
    service.archive.archive_session(session, content_sha256=digest)
    assert len(exported) == 2
    with pytest.raises(NotFound):
        service.get_session(session)


# -- the RPCs --------------------------------------------------------------------------------


def test_archive_erases_the_session_and_restore_brings_back_the_same_bytes(
    inprocess_server: RunningServer,
) -> None:
    with Client(f"127.0.0.1:{inprocess_server.port}") as mg:
        template = mg.create_template(
            name="greet", content="hi {{who}}", variables=[{"name": "who"}]
        )
        keep = record_session(mg, "keep")
        gone = record_session(mg, "gone", close=False)
        mg.instantiate_template(template_id=template.id, variables={"who": "x"}, session_id=gone)
        mg.close_session(gone)
        data, summary = mg.export_session(gone)
        assert summary.nodes == 7 and summary.events > 0

        with pytest.raises(FailedPrecondition, match="changed since it was exported"):
            mg.archive_session(gone, "0" * 64)
        with pytest.raises(InvalidArgument, match="64 lowercase hex"):
            mg.archive_session(gone, "abc")
        mg.get_session(gone)  # still there

        result = mg.archive_session(gone, summary.content_sha256, archive_id="a-1")
        assert (result.deleted_nodes, result.erased_events) == (8, summary.events)
        with pytest.raises(NotFound):
            mg.get_session(gone)
        assert list(mg.query(session_id=gone).nodes) == []
        # Its history is gone from the log; one content-free marker says what happened.
        events = []
        for event in mg.stream_events(from_sequence=1):
            events.append(event)
            if event.type == pb.EVENT_TYPE_SESSION_ARCHIVED:
                break
        about = [e for e in events if e.session_id == gone]
        assert [e.type for e in about] == [pb.EVENT_TYPE_SESSION_ARCHIVED]
        assert about[0].node.content == "" and not about[0].node.metadata
        assert any(e.session_id == keep for e in events)  # others keep their history
        template_after = mg.get_template(template_id=template.id)
        assert template_after.id == template.id

        restored = mg.restore_session(data)
        assert (restored.nodes, restored.events, restored.skipped_edges) == (8, summary.events, 0)
        assert mg.export_session(gone)[0] == data
        again = mg.restore_session(data)
        assert again.already_present
        with pytest.raises(InvalidArgument, match="export line"):
            mg.restore_session(data.replace(b'"record":"node"', b'"record":"n0de"', 1))


def test_restore_refuses_a_session_that_exists_and_differs(
    inprocess_server: RunningServer,
) -> None:
    with Client(f"127.0.0.1:{inprocess_server.port}") as mg:
        session = record_session(mg, "s", close=False)
        data, _ = mg.export_session(session)
        mg.add_prompt(session, "one more")
        with pytest.raises(AlreadyExists, match="differs from the archive"):
            mg.restore_session(data)


def test_candidates_are_closed_or_idle_sessions_oldest_first(
    inprocess_server: RunningServer,
) -> None:
    with Client(f"127.0.0.1:{inprocess_server.port}") as mg:
        first = record_session(mg, "first")
        idle = record_session(mg, "idle", close=False)
        cutoff = dt.datetime.now(dt.UTC)
        busy = record_session(mg, "busy", close=False, turns=0)
        found = [c.session.id for c in mg.iter_archive_candidates(cutoff, page_size=1)]
        assert found == [first, idle]
        assert busy not in found
        mg.add_prompt(idle, "activity")
        found = [c.session.id for c in mg.iter_archive_candidates(cutoff)]
        assert found == [first]


def test_undelivered_registry_reports_keep_the_session() -> None:
    service = _service()
    session = service.create_session(NewSession(title="t"))
    export = service.archive.export_session(session.id)
    with pytest.raises(FailedPrecondition, match="LLM-Registry has not received"):
        service.archive.archive_session(
            session.id, content_sha256=export.sha256(), undelivered_from=export.events[0].sequence
        )
    service.archive.archive_session(
        session.id,
        content_sha256=export.sha256(),
        undelivered_from=service.store.events.last_sequence + 1,
    )


# -- the job against a Data-Vault -------------------------------------------------------------


def _vault_destination(vault: DataVault) -> VaultDestination:
    return VaultDestination(vault.url, token=TOKEN, backoff=0.01)


def test_a_session_too_large_to_restore_is_not_archived(
    inprocess_server: RunningServer, vault: DataVault, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Restore reads back at most MAX_EXPORT_BYTES: a larger export would be an archive that
    can never come back, so the session stays in the graph."""
    monkeypatch.setattr(bundle, "MAX_EXPORT_BYTES", 512)
    with Client(f"127.0.0.1:{inprocess_server.port}") as mg:
        session = record_session(mg, "big")
        summary = archive_all(mg, _vault_destination(vault), policy=RetentionPolicy())
        assert (summary.archived, summary.failed) == (0, 1)
        assert "could not be restored" in summary.failures[0]
        mg.get_session(session)
        assert list(_vault_destination(vault).list()) == []


def test_run_archives_old_sessions_to_the_vault_and_restore_round_trips(
    inprocess_server: RunningServer, vault: DataVault
) -> None:
    lines: list[str] = []
    with Client(f"127.0.0.1:{inprocess_server.port}") as mg:
        old = [record_session(mg, f"old-{i}") for i in range(3)]
        exports = {sid: mg.export_session(sid)[0] for sid in old}
        cutoff_now = dt.datetime.now(dt.UTC)
        young = record_session(mg, "young", close=False)
        vault.fail_next(2)  # transient trouble is retried
        destination = _vault_destination(vault)
        summary = archive_all(
            mg,
            destination,
            policy=RetentionPolicy("PCI"),
            progress=lines.append,
            batch_size=2,
            now=cutoff_now,
        )
        assert (summary.processed, summary.archived, summary.failed) == (3, 3, 0), lines
        assert vault.calls.count(("POST", "/api/v1/archive/batch")) == 2
        assert summary.bytes > 0
        mg.get_session(young)
        for sid in old:
            with pytest.raises(NotFound):
                mg.get_session(sid)
        listed = list(destination.list())
        assert sorted(m["session_id"] for m in listed) == sorted(old)
        assert all(m["compliance"] == "PCI" and m["retention_days"] == 1095 for m in listed)
        assert all(
            m["schema_version"] == keys.SCHEMA_VERSION and m["format_version"] == 1 for m in listed
        )
        retain = dt.datetime.fromisoformat(listed[0]["retain_until"])
        assert retain - dt.datetime.now(dt.UTC) > dt.timedelta(days=1094)
        # The archive holds exactly the export; restore brings those bytes back.
        for manifest in listed:
            _, data = destination.fetch(manifest["archive_id"])
            assert decompress(data, manifest) == exports[manifest["session_id"]]
            mg.restore_session(decompress(data, manifest))
            assert mg.export_session(manifest["session_id"])[0] == exports[manifest["session_id"]]
        # Restored sessions count as active from their restore: the same cutoff leaves them.
        lines.clear()
        assert (
            archive_all(mg, destination, policy=RetentionPolicy("PCI"), now=cutoff_now).processed
            == 0
        )
        # Once idle again: same state, same archive ids, no duplicates (plus the young one).
        again = archive_all(
            mg,
            destination,
            policy=RetentionPolicy("PCI"),
            progress=lines.append,
            now=dt.datetime.now(dt.UTC) + dt.timedelta(seconds=1),
        )
        assert again.archived == 4
        assert len(vault.ids()) == 4
        assert sum("already uploaded" in line for line in lines) == 3
        destination.close()


def test_vault_down_fails_the_run_and_keeps_every_session(
    inprocess_server: RunningServer, vault: DataVault
) -> None:
    with Client(f"127.0.0.1:{inprocess_server.port}") as mg:
        sid = record_session(mg, "s")
        destination = _vault_destination(vault)
        vault.fail_next(100)  # every API call answers 503 (retried, then given up)
        with pytest.raises(ArchiveError, match="did not answer"):
            archive_all(mg, destination, policy=RetentionPolicy())
        mg.get_session(sid)
        assert vault.ids() == []


def test_legal_hold_prevents_deletion_until_lifted(
    inprocess_server: RunningServer, vault: DataVault
) -> None:
    with Client(f"127.0.0.1:{inprocess_server.port}") as mg:
        record_session(mg, "held")
        destination = _vault_destination(vault)
        archive_all(mg, destination, policy=RetentionPolicy("HIPAA", legal_hold=True))
        (archive_id,) = vault.ids()
        with pytest.raises(ArchiveError, match="legal hold"):
            destination.delete(archive_id)
        destination.set_legal_hold(archive_id, False)
        destination.delete(archive_id)
        assert vault.ids() == []


def test_plugin_refusing_archival_skips_the_session(
    start_inprocess: Start, vault: DataVault, tmp_path: Path
) -> None:
    plugins = tmp_path / "plugins.yaml"
    plugins.write_text(
        json.dumps(
            {
                "version": 1,
                "plugins": [
                    {
                        "name": "archivable-only",
                        "type": "validator",
                        "hooks": ["before_archive"],
                        "config": {"required_metadata": ["archivable"]},
                    }
                ],
            }
        )
    )
    server = start_inprocess(plugins_file=plugins)
    lines: list[str] = []
    with Client(f"127.0.0.1:{server.port}") as mg:
        kept = record_session(mg, "kept")
        allowed = mg.create_session(title="ok", metadata={"archivable": "yes"}).id
        mg.close_session(allowed)
        summary = archive_all(
            mg, _vault_destination(vault), policy=RetentionPolicy(), progress=lines.append
        )
        assert (summary.archived, summary.skipped, summary.failed) == (1, 1, 0), lines
        assert any("archivable-only" in line for line in lines)
        mg.get_session(kept)
        with pytest.raises(NotFound):
            mg.get_session(allowed)
    assert len(vault.ids()) == 1


# -- the command, killed at every step ---------------------------------------------------------


def _archive_cmd(server: ServerProcess, vault: DataVault, *extra: str) -> list[str]:
    return [
        sys.executable,
        "-m",
        "memorygraph",
        "archive",
        "run",
        "--server",
        server.address,
        "--older-than",
        "0s",
        "--vault-url",
        vault.url,
        *extra,
    ]


def _env() -> dict[str, str]:
    return {
        **os.environ,
        "PYTHONPATH": str(REPO / "dataplane"),
        "MEMORYGRAPH_VAULT_TOKEN": TOKEN,
    }


@pytest.mark.slow
@pytest.mark.parametrize("step", ["exported", "uploaded", "verified", "deleting from the graph"])
def test_kill_at_each_step_then_rerun_loses_nothing_and_duplicates_nothing(
    tmp_path: Path, vault: DataVault, step: str
) -> None:
    server = ServerProcess(tmp_path / "data").start()
    try:
        with Client(server.address) as mg:
            sessions = [record_session(mg, f"s{i}") for i in range(3)]
            exports = {sid: mg.export_session(sid)[0] for sid in sessions}
        # Kill the job at the step, in the middle of the second session.
        proc = subprocess.Popen(
            _archive_cmd(server, vault), stdout=subprocess.PIPE, env=_env(), text=True
        )
        assert proc.stdout is not None
        seen = 0
        for line in proc.stdout:
            if f": {step}" in line:
                seen += 1
                if seen == 2:
                    proc.send_signal(signal.SIGKILL)
                    break
        proc.wait(timeout=30)
        assert seen == 2

        def check_either_or() -> None:
            with Client(server.address) as mg:
                archived = {
                    json.loads(p.read_text())["session_id"] for p in vault.root.glob("*.json")
                }
                for sid in sessions:
                    try:
                        mg.get_session(sid)
                        in_graph = True
                    except NotFound:
                        in_graph = False
                    assert in_graph or sid in archived, (
                        f"{sid} is neither in the graph nor archived"
                    )

        check_either_or()
        rerun = subprocess.run(
            _archive_cmd(server, vault), capture_output=True, env=_env(), text=True, timeout=120
        )
        assert rerun.returncode == 0, rerun.stdout + rerun.stderr
        assert "0 failed" in rerun.stdout
        check_either_or()
        destination = _vault_destination(vault)
        manifests = list(destination.list())
        assert sorted(m["session_id"] for m in manifests) == sorted(sessions)  # one each
        with Client(server.address) as mg:
            for sid in sessions:
                with pytest.raises(NotFound):
                    mg.get_session(sid)
            for manifest in manifests:
                restored = subprocess.run(
                    [
                        sys.executable,
                        "-m",
                        "memorygraph",
                        "archive",
                        "restore",
                        "--server",
                        server.address,
                        "--vault-url",
                        vault.url,
                        manifest["archive_id"],
                    ],
                    capture_output=True,
                    env=_env(),
                    text=True,
                    timeout=60,
                )
                assert restored.returncode == 0, restored.stderr
                sid = manifest["session_id"]
                assert mg.export_session(sid)[0] == exports[sid]
        destination.close()
    finally:
        server.stop()


def test_command_line_errors_are_precise(tmp_path: Path) -> None:
    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "memorygraph", "archive", *args],
            capture_output=True,
            env=_env(),
            text=True,
            timeout=60,
        )

    bad_duration = run("run", "--older-than", "30 days", "--vault-url", "http://127.0.0.1:1")
    assert bad_duration.returncode == 2 and "not a duration" in bad_duration.stderr
    no_destination = run("list")
    assert no_destination.returncode == 2  # a bad option, as documented
    assert "exactly one destination" in no_destination.stderr
    assert "Traceback" not in no_destination.stderr
    for option, value in [("--retention-days", "0"), ("--limit", "-1"), ("--batch-size", "0")]:
        bad = run("run", "--older-than", "1h", "--vault-url", "http://127.0.0.1:1", option, value)
        assert bad.returncode == 2 and option in bad.stderr, bad.stderr
        assert "Traceback" not in bad.stderr
    assert parse_duration("1h30m") == dt.timedelta(minutes=90)
    assert parse_duration("30d") == dt.timedelta(days=30)


def test_a_restored_session_counts_as_active_from_its_restore(
    inprocess_server: RunningServer,
) -> None:
    """Otherwise the next scheduled run would archive again what a user just brought back."""
    with Client(f"127.0.0.1:{inprocess_server.port}") as mg:
        session = record_session(mg, "looked-at")
        before_restore = dt.datetime.now(dt.UTC)
        assert [c.session.id for c in mg.iter_archive_candidates(before_restore)] == [session]
        data, summary = mg.export_session(session)
        mg.archive_session(session, summary.content_sha256)
        mg.restore_session(data)
        assert list(mg.iter_archive_candidates(before_restore)) == []
        later = dt.datetime.now(dt.UTC) + dt.timedelta(seconds=1)
        (candidate,) = mg.iter_archive_candidates(later)
        assert candidate.last_activity_time.ToDatetime(dt.UTC) >= before_restore


def test_history_from_another_servers_log_is_not_written_into_this_one() -> None:
    """Sequence numbers belong to one log: restored elsewhere, a session comes back without its
    events, even where this log has holes at those very numbers."""
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
    assert {e.sequence for e in export.events} == {e.sequence for e in export_here.events}
    result = here.archive.restore_session(decode_export(export.encode()))
    assert (result.nodes, result.events, result.skipped_events) == (2, 0, len(export.events))
    assert here.store.events.session_events(source.id) == []
    assert here.archive.restore_session(decode_export(export.encode())).already_present


def test_archive_ids_from_the_command_line_stay_one_path_segment(vault: DataVault) -> None:
    destination = _vault_destination(vault)
    with pytest.raises(ArchiveError, match="is not in the vault"):
        destination.delete("../policies")
    assert ("DELETE", "/api/v1/archive/..%2Fpolicies") in vault.calls
    destination.close()
