"""The session export format: canonical, decoding to itself; damage and foreign records refused."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import replace
from typing import Any

import pytest
from memorygraph.errors import InvalidArgument
from memorygraph.graph.export import decode_export
from memorygraph.model import NewNode, NewSession, NodeKind

from .archive_support import _service


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
