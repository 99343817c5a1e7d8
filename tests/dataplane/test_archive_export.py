"""The session export format: canonical, decoding to itself; damage and foreign records refused."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import replace
from typing import Any

import pytest
from memorygraph.errors import InvalidArgument
from memorygraph.graph.export import ExportDecoder, decode_export
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
        (lambda d: d.replace(b'"nodes":1', b'"nodes":' + b"1" * 5000), "not JSON this server"),
        (lambda d: b"[" * 100_000 + b"\n" + d, "not JSON this server"),
        (lambda d: d.replace(b'"content":"q"', b'"content":"\\ud800"'), "not valid Unicode"),
        (lambda d: d.replace(b'"content":"q"', b'"content":"\xff"'), "not UTF-8"),
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


def test_an_export_read_in_pieces_of_any_size_decodes_to_itself() -> None:
    """Restores decode an export as it arrives: a piece may end anywhere, within a line or a
    character; an event's node keeps one text with the node record it repeats."""
    service = _service()
    session = service.create_session(NewSession(title="ünïcode"))
    for i in range(3):
        service.create_node(NewNode(NodeKind.PROMPT, session_id=session.id, content=f"q{i} ✓"))
    data = service.archive.export_session(session.id).encode()
    for size in (1, 2, 7, 100, len(data)):
        decoder = ExportDecoder()
        for start in range(0, len(data), size):
            decoder.feed(data[start : start + size])
        export = decoder.finish()
        assert export.encode() == data
    contents = {node.id: node.content for node in export.nodes}
    repeated = [e.node for e in export.events if e.node is not None and e.node.id in contents]
    assert repeated and all(node.content is contents[node.id] for node in repeated)


def test_texts_with_line_separators_of_other_kinds_survive_an_export() -> None:
    """Only a newline ends a line of an export; U+2028, U+0085 and the like inside a text are
    text."""
    service = _service()
    session = service.create_session(NewSession(title="t"))
    text = "a\u2028b\x85c\x1cd\u2029e\x0bf\x0cg"
    service.create_node(NewNode(NodeKind.PROMPT, session_id=session.id, content=text))
    data = service.archive.export_session(session.id).encode()
    assert decode_export(data).nodes[0].content == text
