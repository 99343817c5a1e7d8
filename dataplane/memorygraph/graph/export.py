"""The session export format: one session, whole, as JSON Lines.

An export is what archival ships and what restore reads back. It is canonical — the same graph
state always gives the same bytes (sorted keys, fixed order of records, no export time) — so its
SHA-256 identifies the state, and archival deletes a session only while it still hashes to what
was shipped.

    line 1      {"format": "memorygraph.session", "version": 1, "session_id": ..., "nodes": N,
                 "edges": M, "events": K, "log": id of the event log the sequences belong to}
    then        {"record": "session", ...node fields}
                N x {"record": "node", ...node fields}      by create time, then id
                M x {"record": "edge", ...edge fields}      by (source, kind, target)
                K x {"record": "event", ...event fields}    by sequence

Node fields: id, kind, session_id, content, metadata, create_time, update_time, attrs (the
node's details in their plain-data form, `memorygraph.model.details_fields`). Edge
fields: source_id, target_id, kind, metadata, create_time. Event fields: sequence, type, time,
session_id, node (node fields or null), edge (edge fields or null). Ids are canonical UUID text,
times microseconds since the Unix epoch.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from typing import Any

from memorygraph.errors import InvalidArgument
from memorygraph.model import (
    Edge,
    EdgeKind,
    Event,
    EventType,
    Node,
    NodeKind,
    SessionState,
    details_fields,
    details_from_fields,
    format_id,
    parse_id,
)

__all__ = ["EXPORT_FORMAT", "EXPORT_VERSION", "ExportDecoder", "SessionExport", "decode_export"]

EXPORT_FORMAT = "memorygraph.session"
EXPORT_VERSION = 1

_STATES = frozenset(s.value for s in SessionState)
_dumps = json.JSONEncoder(ensure_ascii=False, sort_keys=True, separators=(",", ":")).encode


def _node_fields(node: Node) -> dict[str, Any]:
    return {
        "id": format_id(node.id),
        "kind": node.kind.value,
        "session_id": format_id(node.session_id) if node.session_id is not None else None,
        "content": node.content,
        "metadata": node.metadata,
        "create_time": node.create_time,
        "update_time": node.update_time,
        "attrs": details_fields(node.details),
    }


def _edge_fields(edge: Edge) -> dict[str, Any]:
    return {
        "source_id": format_id(edge.source_id),
        "target_id": format_id(edge.target_id),
        "kind": edge.kind.value,
        "metadata": edge.metadata,
        "create_time": edge.create_time,
    }


# One function per kind of line: an export is encoded with them, and a line read back must be
# exactly what they make of the record it holds.


def _header_line(export: SessionExport) -> str:
    return _dumps(
        {
            "format": EXPORT_FORMAT,
            "version": EXPORT_VERSION,
            "session_id": format_id(export.session.id),
            "nodes": len(export.nodes),
            "edges": len(export.edges),
            "events": len(export.events),
            "log": export.log,
        }
    )


def _node_line(record: str, node: Node) -> str:
    return _dumps({"record": record, **_node_fields(node)})


def _edge_line(edge: Edge) -> str:
    return _dumps({"record": "edge", **_edge_fields(edge)})


def _event_line(event: Event) -> str:
    return _dumps(
        {
            "record": "event",
            "sequence": event.sequence,
            "type": event.type.value,
            "time": event.time,
            "session_id": format_id(event.session_id) if event.session_id is not None else None,
            "node": _node_fields(event.node) if event.node is not None else None,
            "edge": _edge_fields(event.edge) if event.edge is not None else None,
        }
    )


@dataclass(slots=True)
class SessionExport:
    session: Node
    nodes: list[Node] = field(default_factory=list)
    edges: list[Edge] = field(default_factory=list)
    events: list[Event] = field(default_factory=list)
    log: str = ""  # id of the event log the events' sequence numbers belong to
    # The encoding, made once: archival hashes, sizes and streams the same export.
    _encoded: bytes | None = field(default=None, init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        self.nodes.sort(key=lambda n: (n.create_time, n.id))
        self.edges.sort(key=lambda e: (e.source_id, e.kind.value, e.target_id))
        self.events.sort(key=lambda e: e.sequence)

    def encode(self) -> bytes:
        """The canonical JSON Lines bytes."""
        if self._encoded is None:
            self._encoded = self._encode()
        return self._encoded

    def _encode(self) -> bytes:
        lines = [_header_line(self), _node_line("session", self.session)]
        lines += [_node_line("node", n) for n in self.nodes]
        lines += [_edge_line(e) for e in self.edges]
        lines += [_event_line(e) for e in self.events]
        return ("\n".join(lines) + "\n").encode()

    def sha256(self) -> str:
        return hashlib.sha256(self.encode()).hexdigest()


class _Reader:
    """Field access that turns every shape error into InvalidArgument naming the line."""

    def __init__(self, line: int, row: Any) -> None:
        if not isinstance(row, dict):
            raise InvalidArgument(f"export line {line}: expected a JSON object")
        self.line = line
        self.row = row

    def fail(self, message: str) -> InvalidArgument:
        return InvalidArgument(f"export line {self.line}: {message}")

    def get(
        self, name: str, kind: type | tuple[type, ...], row: dict[str, Any] | None = None
    ) -> Any:
        source = self.row if row is None else row
        if name not in source:
            raise self.fail(f"missing field {name!r}")
        value = source[name]
        if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
            raise self.fail(f"field {name!r} has the wrong type")
        return value

    def node_id(self, name: str, row: dict[str, Any]) -> bytes:
        try:
            return parse_id(self.get(name, str, row), name)
        except InvalidArgument as exc:
            raise self.fail(str(exc)) from None

    def node(self, row: dict[str, Any] | None = None) -> Node:
        row = self.row if row is None else row
        session = row.get("session_id")
        try:
            kind = NodeKind(self.get("kind", str, row))
        except ValueError:
            raise self.fail(f"unknown node kind {row['kind']!r}") from None
        attrs = self.get("attrs", dict, row)
        if kind is NodeKind.SESSION and attrs.get("state") not in _STATES:
            raise InvalidArgument("the session record has no valid state (active or closed)")
        try:
            details = details_from_fields(kind, attrs)
        except (ValueError, InvalidArgument) as exc:
            raise self.fail(f"attrs: {exc}") from None
        return Node(
            id=self.node_id("id", row),
            kind=kind,
            session_id=self.node_id("session_id", row) if session is not None else None,
            content=self.get("content", str, row),
            metadata=self._strings(self.get("metadata", dict, row)),
            create_time=self.get("create_time", int, row),
            update_time=self.get("update_time", int, row),
            details=details,
        )

    def edge(self, row: dict[str, Any] | None = None) -> Edge:
        row = self.row if row is None else row
        try:
            kind = EdgeKind(self.get("kind", str, row))
        except ValueError:
            raise self.fail(f"unknown edge kind {row['kind']!r}") from None
        return Edge(
            source_id=self.node_id("source_id", row),
            target_id=self.node_id("target_id", row),
            kind=kind,
            metadata=self._strings(self.get("metadata", dict, row)),
            create_time=self.get("create_time", int, row),
        )

    def event(self) -> Event:
        try:
            kind = EventType(self.get("type", str))
        except ValueError:
            raise self.fail(f"unknown event type {self.row['type']!r}") from None
        session = self.row.get("session_id")
        node, edge = self.row.get("node"), self.row.get("edge")
        return Event(
            sequence=self.get("sequence", int),
            type=kind,
            time=self.get("time", int),
            session_id=self.node_id("session_id", self.row) if session is not None else None,
            node=self.node(self.get("node", dict)) if node is not None else None,
            edge=self.edge(self.get("edge", dict)) if edge is not None else None,
        )

    def _strings(self, mapping: dict[str, Any]) -> dict[str, str]:
        if not all(isinstance(v, str) for v in mapping.values()):
            raise self.fail("metadata values must be strings")
        return mapping


def _check_header(header: dict[str, Any], export: SessionExport) -> None:
    if header.get("session_id") != format_id(export.session.id):
        raise InvalidArgument("the export header names a different session than its record")
    counts = {"nodes": len(export.nodes), "edges": len(export.edges), "events": len(export.events)}
    for name, count in counts.items():
        if header.get(name) != count:
            raise InvalidArgument(
                f"the export header says {header.get(name)!r} {name} but it holds {count}; "
                "the file is truncated or was edited"
            )


def _check_belonging(export: SessionExport) -> None:
    """Restore writes every record back: each must be this session's, and there only once."""
    session = export.session
    sid = format_id(session.id)
    if session.session_id != session.id:
        raise InvalidArgument(f"the session record's session_id is not its id {sid}")
    for node in export.nodes:
        if node.session_id != session.id or node.kind.is_global or node.kind is NodeKind.SESSION:
            raise InvalidArgument(f"node {format_id(node.id)} does not belong to session {sid}")
    own = {session.id, *(n.id for n in export.nodes)}
    if len(own) != len(export.nodes) + 1:
        raise InvalidArgument("a node appears twice in the export")
    for edge in export.edges:
        if edge.source_id not in own and edge.target_id not in own:
            raise InvalidArgument(
                f"edge {format_id(edge.source_id)} -> {format_id(edge.target_id)} does not "
                f"touch session {sid}"
            )
    if len({e.key for e in export.edges}) != len(export.edges):
        raise InvalidArgument("an edge appears twice in the export")
    sequences: set[int] = set()
    for event in export.events:
        if event.session_id != session.id:
            owner = format_id(event.session_id) if event.session_id is not None else "none"
            raise InvalidArgument(f"event {event.sequence} belongs to session {owner}, not {sid}")
        if event.sequence in sequences:
            raise InvalidArgument(f"event {event.sequence} appears twice in the export")
        sequences.add(event.sequence)
        problem = _event_problem(event, session.id)
        if problem:
            raise InvalidArgument(f"event {event.sequence} {problem}")


def _event_problem(event: Event, session_id: bytes) -> str:
    """What makes `event` one that no history of the session holds ("" when nothing does):
    the session's history records its own changes — the session itself, its nodes, edges
    from them — never archival's markers."""
    node, edge = event.node, event.edge
    if event.type.is_lifecycle:
        return f"is a {event.type} marker, which no session history holds"
    if event.type in (EventType.EDGE_CREATED, EventType.EDGE_DELETED):
        return "" if edge is not None and node is None else "is an edge event without its edge"
    if node is None or edge is not None:
        return "is a node event without its node"
    if node.session_id != session_id or node.kind.is_global:
        return f"is about node {format_id(node.id)}, which is not of this session"
    if (node.kind is NodeKind.SESSION) != (node.id == session_id):
        return f"is about node {format_id(node.id)}, which is not of this session"
    return ""


class ExportDecoder:
    """An export read a piece at a time, as it arrives (`feed`), then checked whole (`finish`).

    Each line is parsed once it is complete, checked against the canonical encoding of the
    record it holds and its place in the canonical order, and then only that record is kept:
    the line's bytes, text and parsed JSON are dropped at once. An event's node shares the
    content text of the node record it repeats. So a restore holds the records, not the raw
    export, its text and its records all at once."""

    def __init__(self) -> None:
        self._pending: list[bytes] = []  # the start of a line that is not complete yet
        self._line = 0
        self._header: dict[str, Any] | None = None
        self._header_text = ""
        self._session: Node | None = None
        self._nodes: list[Node] = []
        self._edges: list[Edge] = []
        self._events: list[Event] = []
        self._contents: dict[bytes, str] = {}  # content of each node record, by id
        self._rank = 0  # the kind of record read last, in the canonical order
        self._key: tuple[Any, ...] = ()  # the sort key of the record read last

    def feed(self, data: bytes) -> None:
        """Read the next piece of the export (pieces may end anywhere, within a line too)."""
        start = 0
        while (end := data.find(b"\n", start)) >= 0:
            line = data[start:end]
            if self._pending:
                self._pending.append(line)
                line = b"".join(self._pending)
                self._pending = []
            self._read(line)
            start = end + 1
        if start < len(data):
            self._pending.append(data[start:] if start else data)

    def finish(self) -> SessionExport:
        """The export read, once checked as a whole; `InvalidArgument` says what is wrong."""
        if self._pending:  # text after the last newline: a line cut short, or no final newline
            self._read(b"".join(self._pending))
            self._pending = []
            raise _not_canonical()
        header = self._header
        if header is None:
            raise InvalidArgument("the export is empty")
        if self._session is None or self._session.kind is not NodeKind.SESSION:
            raise InvalidArgument("the export has no session record")
        log = header.get("log")
        export = SessionExport(
            self._session,
            self._nodes,
            self._edges,
            self._events,
            log if isinstance(log, str) else "",
        )
        _check_header(header, export)
        _check_belonging(export)
        if not isinstance(log, str):
            raise InvalidArgument("the export header has no event log id ('log')")
        if _header_line(export) != self._header_text:
            raise _not_canonical()
        return export

    def _read(self, raw: bytes) -> None:
        self._line += 1
        number = self._line
        try:
            text = raw.decode()
        except UnicodeDecodeError:
            raise InvalidArgument(f"export line {number}: not UTF-8 text") from None
        try:
            row = json.loads(text)
        except json.JSONDecodeError as exc:
            raise InvalidArgument(f"export line {number}: not JSON ({exc.msg})") from None
        except (ValueError, RecursionError):  # an integer of thousands of digits, deep nesting
            raise InvalidArgument(f"export line {number}: not JSON this server reads") from None
        reader = _Reader(number, row)
        if number == 1:
            self._read_header(reader.row, text)
        elif (canonical := self._record(reader)) != text:
            raise _not_canonical(number, canonical)

    def _read_header(self, header: dict[str, Any], text: str) -> None:
        if header.get("format") != EXPORT_FORMAT:
            raise InvalidArgument(f"not a session export (format is not {EXPORT_FORMAT!r})")
        version = header.get("version")
        if version != EXPORT_VERSION:
            raise InvalidArgument(
                f"export version {version!r} is not supported (this server reads {EXPORT_VERSION})"
            )
        self._header, self._header_text = header, text

    def _record(self, reader: _Reader) -> str:
        """Keep the record on `reader`'s line; returns its canonical encoding."""
        record = reader.row.get("record")
        if record == "session":
            if self._session is not None:
                raise reader.fail("a second session record")
            node = reader.node()
            self._place(0, ())
            self._session = node
            self._contents[node.id] = node.content
            return _node_line("session", node)
        if record == "node":
            node = reader.node()
            self._place(1, (node.create_time, node.id))
            self._nodes.append(node)
            self._contents[node.id] = node.content
            return _node_line("node", node)
        if record == "edge":
            edge = reader.edge()
            self._place(2, (edge.source_id, edge.kind.value, edge.target_id))
            self._edges.append(edge)
            return _edge_line(edge)
        if record == "event":
            event = reader.event()
            self._place(3, (event.sequence,))
            if event.node is not None:
                known = self._contents.get(event.node.id)
                if known is not None and known == event.node.content:
                    event.node.content = known  # one text for both, not two equal ones
            self._events.append(event)
            return _event_line(event)
        raise reader.fail(f"unknown record type {record!r}")

    def _place(self, rank: int, key: tuple[Any, ...]) -> None:
        """Records come in the canonical order: the session, nodes, edges, events, each kind
        sorted by its key."""
        if rank < self._rank or (rank == self._rank and key < self._key):
            raise _not_canonical()
        self._rank, self._key = rank, key


def _not_canonical(number: int = 0, canonical: str = "") -> InvalidArgument:
    try:
        canonical.encode()
    except UnicodeEncodeError:  # JSON escapes can spell text that is no Unicode string
        return InvalidArgument(f"export line {number}: holds text that is not valid Unicode")
    return InvalidArgument(
        "the export is not in canonical form (records out of order or re-encoded); "
        "restore takes exports exactly as the server wrote them"
    )


def decode_export(data: bytes) -> SessionExport:
    """Parse and check a whole export; `InvalidArgument` says which line is wrong and how."""
    decoder = ExportDecoder()
    decoder.feed(data)
    return decoder.finish()
