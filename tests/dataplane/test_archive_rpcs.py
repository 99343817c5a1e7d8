"""ArchiveSession and RestoreSession: what they erase, what they bring back, what they refuse."""

from __future__ import annotations

import pytest
from memorygraph.client import Client
from memorygraph.errors import AlreadyExists, FailedPrecondition, InvalidArgument, NotFound
from memorygraph.model import NewSession
from memorygraph.server import RunningServer
from memorygraph.v1 import graph_pb2 as pb

from .archive_support import _service, record_session


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
