"""Archival while writers are at work: a session changed after its export is kept."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from memorygraph.errors import FailedPrecondition, NotFound
from memorygraph.graph.service import GraphService
from memorygraph.model import EdgeKind, NewEdge, NewNode, NewSession, NodeKind

from .archive_support import _service


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
