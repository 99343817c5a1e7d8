"""Which sessions archival takes: closed or idle ones, oldest first, not ones active again."""

from __future__ import annotations

import datetime as dt

from memorygraph.client import Client
from memorygraph.graph.service import GraphService
from memorygraph.model import EdgeKind, NewEdge, NewNode, NewSession, NodeKind
from memorygraph.server import RunningServer
from memorygraph.store import GraphStore, MemoryStore

from .archive_support import record_session


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
