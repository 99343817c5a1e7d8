"""Queries over the time-ordered indexes: filters, pages and streams.

Queries return node records (serialized `v1.Node`, as stored), not domain nodes, each framed as
an entry of a QueryBatch's `nodes` (`codec.framing`): a session's index entries hold them framed
so, so a session query reads one index range and nothing else, and the servicer joins the bytes
into its response without touching them. Only a metadata filter looks inside a record.

A page token is opaque to clients: base64url of a version byte, a fingerprint of the filter it
belongs to, and the (create time, node id) position after which the next page starts. Metadata
filters need the records, so a page stops after `SCAN_BUDGET` index entries even when it is not
full, and hands back a token to go on; a query therefore costs bounded work per call. A page (or
a streamed batch) also stops before its records would pass a byte budget below the largest
message, holding at least one record whatever its size, so that any page can be sent.
"""

from __future__ import annotations

import base64
import hashlib
import heapq
import itertools
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from typing import Any, TypeVar

from memorygraph import deadline
from memorygraph.codec.framing import QUERY_BATCH_NODES, frame, unframe
from memorygraph.codec.nodes import decode_node, record_metadata
from memorygraph.errors import InvalidArgument
from memorygraph.graph.limits import FRAMING
from memorygraph.model import MAX_TIME, Node, NodeKind, SessionDetails, SessionState
from memorygraph.store import GraphStore
from memorygraph.store.keys import NODE_KIND_CODES, session_index_entry
from memorygraph.store.layout import session_entry_position

__all__ = [
    "DEFAULT_PAGE_SIZE",
    "MAX_PAGE_SIZE",
    "Page",
    "QueryFilter",
    "RecordPage",
    "archive_fingerprint",
    "decode_token",
    "encode_token",
    "get_nodes",
    "list_sessions",
    "page_size",
    "run_query",
    "sessions_fingerprint",
    "stream_query",
]

DEFAULT_PAGE_SIZE = 100
MAX_PAGE_SIZE = 1000
DEFAULT_BATCH_SIZE = 256
SCAN_BUDGET = 10_000
# What a page leaves of the largest message for everything but its records.
PAGE_HEADROOM = 1024
# Nodes BatchGetNodes reads at a time.
_READ_CHUNK = 256

T = TypeVar("T")
_TOKEN_VERSION = 1

Position = tuple[int, bytes]  # (create time, node id)


@dataclass(frozen=True, slots=True)
class QueryFilter:
    session_id: bytes | None = None
    kinds: frozenset[NodeKind] = frozenset()
    start_time: int = 0  # inclusive, microseconds
    end_time: int = MAX_TIME  # exclusive
    metadata: tuple[tuple[str, str], ...] = ()
    descending: bool = False

    def fingerprint(self) -> bytes:
        text = repr(
            (
                self.session_id,
                sorted(self.kinds),
                self.start_time,
                self.end_time,
                sorted(self.metadata),
                self.descending,
            )
        )
        return hashlib.blake2b(text.encode(), digest_size=8).digest()

    def matches(self, record: bytes) -> bool:
        """Whether a node record has the metadata asked for (kinds and times are the index's
        business)."""
        if not self.metadata:
            return True
        metadata = record_metadata(record)
        return all(metadata.get(k) == v for k, v in self.metadata)


@dataclass(slots=True)
class Page:
    nodes: list[Node] = field(default_factory=list)
    next_page_token: str = ""


@dataclass(slots=True)
class RecordPage:
    """A page of query results: node records framed as QueryBatch entries, ready to join."""

    entries: list[bytes] = field(default_factory=list)
    next_page_token: str = ""


def page_size(
    limit: int, *, default: int = DEFAULT_PAGE_SIZE, cap: int = MAX_PAGE_SIZE, field: str = "limit"
) -> int:
    """0 means the default; values above the cap are clamped to it; negatives are refused."""
    if limit < 0:
        raise InvalidArgument(f"{field} must not be negative (got {limit})")
    return min(limit or default, cap)


def encode_token(fingerprint: bytes, position: Position) -> str:
    raw = bytes([_TOKEN_VERSION]) + fingerprint + position[0].to_bytes(8) + position[1]
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_token(token: str, fingerprint: bytes) -> Position | None:
    if not token:
        return None
    try:
        raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
    except ValueError:
        raw = b""
    if len(raw) != 33 or raw[0] != _TOKEN_VERSION:
        raise InvalidArgument("page_token is malformed; pass next_page_token back unchanged")
    if raw[1:9] != fingerprint:
        raise InvalidArgument(
            "page_token belongs to a different query; keep the filters the same while paging"
        )
    return int.from_bytes(raw[9:17]), raw[17:]


def _positions(store: GraphStore, query: QueryFilter, after: Position | None) -> Iterator[Position]:
    """Kind-index positions matching the kind/time filters, in query order, after `after`."""
    start, end, reverse = query.start_time, query.end_time, query.descending
    if after is not None:
        if reverse:
            end = min(end, after[0] + 1)
        else:
            start = max(start, after[0])
    kinds = query.kinds or frozenset(NodeKind)
    per_kind = [
        ((t, nid) for t, nid, _ in store.scan_kind(kind, start, end, reverse=reverse))
        for kind in sorted(kinds)
    ]
    positions = heapq.merge(*per_kind, reverse=reverse) if len(per_kind) > 1 else per_kind[0]
    if after is None:
        return positions
    if reverse:
        return itertools.dropwhile(lambda p: p >= after, positions)
    return itertools.dropwhile(lambda p: p <= after, positions)


def page_bytes(max_message_bytes: int) -> int:
    """The byte budget of a page's records in a response of at most `max_message_bytes`."""
    return max(max_message_bytes - PAGE_HEADROOM, 1)


def get_nodes(
    store: GraphStore, node_ids: list[bytes], *, max_bytes: int
) -> tuple[list[Node], list[bytes]]:
    """The nodes found (in the order asked) and the ids of those that were not; refused as
    soon as their records take more than `max_bytes`, before the rest are read."""
    found: list[Node] = []
    missing: list[bytes] = []
    size = 0
    for start in range(0, len(node_ids), _READ_CHUNK):
        chunk = node_ids[start : start + _READ_CHUNK]
        for node_id, record in zip(chunk, store.get_node_records(chunk), strict=True):
            if record is None:
                missing.append(node_id)
                continue
            size += len(record) + FRAMING
            if size > max_bytes:
                raise InvalidArgument(
                    f"the nodes asked for take more than {max_bytes} bytes, what one response "
                    "carries: ask for fewer at a time"
                )
            found.append(decode_node(node_id, record))
    return found, missing


def _scan(
    store: GraphStore,
    query: QueryFilter,
    after: Position | None,
    want: int,
    budget: int,
    max_bytes: int,
) -> tuple[list[bytes], Position | None, bool]:
    """Up to `want` matching node records, framed, taking at most `max_bytes` (at least one
    record); (entries, last position passed, index exhausted). At most `budget` index
    entries are looked at."""
    if query.session_id is not None:
        return _scan_session(store, query, after, want, budget, max_bytes)
    found: list[bytes] = []
    size = 0
    last: Position | None = None
    positions = _positions(store, query, after)
    scanned = 0
    while len(found) < want and scanned < budget:
        deadline.check()
        chunk = list(itertools.islice(positions, min(want - len(found), budget - scanned)))
        if not chunk:
            return found, last, True
        scanned += len(chunk)
        records = store.get_node_records([nid for _, nid in chunk])
        for position, record in zip(chunk, records, strict=True):
            if record is not None and query.matches(record):
                entry = frame(QUERY_BATCH_NODES, record)
                size += len(entry)
                if found and size > max_bytes:
                    return found, last, False  # the next page starts with this record
                found.append(entry)
            last = position
            if len(found) == want:
                break
    return found, last, False


def _scan_session(
    store: GraphStore,
    query: QueryFilter,
    after: Position | None,
    want: int,
    budget: int,
    max_bytes: int,
) -> tuple[list[bytes], Position | None, bool]:
    """`_scan` of one session: its index entries hold the framed records, so a chunk of
    entries becomes a list of them in one pass. Without a kind filter (the kind is in the
    key) an ascending scan reads the records alone, and tells where it stopped from the last
    record it read."""
    assert query.session_id is not None
    codes = {NODE_KIND_CODES[kind] for kind in query.kinds}
    chunks, value, position = _session_chunks(store, query, after, min(want, budget))
    found: list[bytes] = []
    size = 0
    last: Position | None = None
    scanned = 0
    pending: list[Any] = []
    while len(found) < want and scanned < budget:
        deadline.check()
        # Each entry gives at most one record, so the chunk never overshoots `want`.
        count = min(want - len(found), budget - scanned)
        while len(pending) < count and (more := next(chunks, None)) is not None:
            pending += more
        chunk, pending = pending[:count], pending[count:]
        if not chunk:
            return found, last, True
        scanned += len(chunk)
        matched: list[Any] = [e for e in chunk if e[0][-1] in codes] if codes else chunk
        if query.metadata:
            matched = [e for e in matched if query.matches(unframe(value(e)))]
        records = matched if value is _itself else [value(e) for e in matched]
        added = sum(map(len, records))
        if size + added > max_bytes:  # this chunk ends the page: take what fits
            return _fill(found, size, matched, max_bytes, last, value, position)
        size += added
        found += records
        last = position(chunk[-1])
    return found, last, False


def _session_chunks(
    store: GraphStore, query: QueryFilter, after: Position | None, first: int
) -> tuple[Iterator[list[Any]], Callable[[Any], bytes], Callable[[Any], Position]]:
    """The session's index entries in lists, what record an entry holds and where it sits:
    (key, record) pairs when the scan filters by kind or descends, else the records alone."""
    assert query.session_id is not None
    if query.kinds or query.descending:
        entries = store.scan_session_entries(
            query.session_id,
            query.start_time,
            query.end_time,
            reverse=query.descending,
            after=after,
            first=first,
        )
        return entries, _entry_record, _entry_position
    records = store.scan_session_records(
        query.session_id, query.start_time, query.end_time, after=after, first=first
    )
    return records, _itself, session_entry_position


def _entry_record(entry: tuple[bytes, bytes]) -> bytes:
    return entry[1]


def _entry_position(entry: tuple[bytes, bytes]) -> Position:
    create_time, node_id, _ = session_index_entry(entry[0])
    return create_time, node_id


def _itself(record: bytes) -> bytes:
    return record


def _fill(
    found: list[bytes],
    size: int,
    matched: list[Any],
    max_bytes: int,
    last: Position | None,
    value: Callable[[Any], bytes],
    position: Callable[[Any], Position],
) -> tuple[list[bytes], Position | None, bool]:
    """`found` with the `matched` session entries that fit in `max_bytes` (at least one
    record in all), and the position of the last one taken: the next page starts after it."""
    taken = None
    for entry in matched:
        record = value(entry)
        size += len(record)
        if found and size > max_bytes:
            break
        found.append(record)
        taken = entry
    # Where the last one taken sits (a record alone has to be decoded to tell): once.
    return found, position(taken) if taken is not None else last, False


def run_query(
    store: GraphStore, query: QueryFilter, *, limit: int, page_token: str, max_bytes: int
) -> RecordPage:
    """A page of up to `limit` records taking at most `max_bytes` (see `page_bytes`)."""
    want = page_size(limit)
    fingerprint = query.fingerprint()
    after = decode_token(page_token, fingerprint)
    records, last, exhausted = _scan(store, query, after, want, max(SCAN_BUDGET, want), max_bytes)
    if exhausted or last is None:
        return RecordPage(records)
    # A full page may be the last one; peeking one entry ahead (of the right kind: metadata
    # filters need the records, whose reading is the next page's business) keeps the token
    # honest.
    ahead, _, exhausted = _scan(store, replace(query, metadata=()), last, 1, SCAN_BUDGET, max_bytes)
    more = bool(ahead) or not exhausted
    return RecordPage(records, encode_token(fingerprint, last) if more else "")


def stream_query(
    store: GraphStore, query: QueryFilter, *, batch_size: int, limit: int, max_bytes: int
) -> Iterator[list[bytes]]:
    """Every matching record, framed, in batches of `batch_size` records taking at most
    `max_bytes` each, stopping after `limit` (0 = all)."""
    size = page_size(batch_size, default=DEFAULT_BATCH_SIZE, field="batch_size")
    if limit < 0:
        raise InvalidArgument(f"limit must not be negative (got {limit})")
    remaining = limit or None
    after: Position | None = None
    while remaining is None or remaining > 0:
        want = size if remaining is None else min(size, remaining)
        records, last, exhausted = _scan(store, query, after, want, SCAN_BUDGET, max_bytes)
        if records:
            yield records
            if remaining is not None:
                remaining -= len(records)
        if exhausted or last is None:
            return
        after = last


def archive_fingerprint(older_than: int) -> bytes:
    """What a ListArchiveCandidates page token is bound to: its cutoff."""
    return hashlib.blake2b(repr(("archive", older_than)).encode(), digest_size=8).digest()


def sessions_fingerprint(state: SessionState | None, user_id: str) -> bytes:
    """What a ListSessions page token is bound to: its filters."""
    return hashlib.blake2b(repr(("sessions", state, user_id)).encode(), digest_size=8).digest()


def list_sessions(
    store: GraphStore,
    *,
    limit: int,
    page_token: str,
    state: SessionState | None,
    user_id: str,
    max_bytes: int,
) -> Page:
    """Sessions newest first, optionally only one state or one user's."""
    want = page_size(limit)
    fingerprint = sessions_fingerprint(state, user_id)
    after = decode_token(page_token, fingerprint)
    end = MAX_TIME if after is None else after[0] + 1
    positions = (
        (t, nid)
        for t, nid, _ in store.scan_kind(NodeKind.SESSION, 0, end, reverse=True)
        if after is None or (t, nid) < after
    )

    def pick(node: Node) -> Node | None:
        details = node.details_as(SessionDetails)
        matches = (state is None or details.state is state) and (
            not user_id or details.user_id == user_id
        )
        return node if matches else None

    sessions, last = _session_page(store, positions, want, pick, max_bytes)
    return Page(sessions, encode_token(fingerprint, last) if last is not None else "")


def _session_page(
    store: GraphStore,
    positions: Iterator[Position],
    want: int,
    pick: Callable[[Node], T | None],
    max_bytes: int,
) -> tuple[list[T], Position | None]:
    """Up to `want` of what `pick` makes of the sessions at `positions`, reading at most
    `SCAN_BUDGET` of them, while their records take at most `max_bytes` (at least one: what
    a session message holds is part of its record); the position to go on from, or None when
    none remain."""
    found: list[T] = []
    size = 0
    last: Position | None = None
    scanned = 0
    while len(found) < want and scanned < SCAN_BUDGET:
        deadline.check()
        chunk = list(itertools.islice(positions, want - len(found)))
        if not chunk:
            return found, None
        scanned += len(chunk)
        records = store.get_node_records([n for _, n in chunk])
        for position, record in zip(chunk, records, strict=True):
            item = pick(decode_node(position[1], record)) if record is not None else None
            if record is not None and item is not None:
                size += len(record) + FRAMING
                if found and size > max_bytes:
                    return found, last  # the next page starts with this session
                found.append(item)
            last = position
    if last is None or next(positions, None) is None:
        return found, None
    return found, last


@dataclass(slots=True)
class Candidate:
    session: Node
    last_activity: int  # microseconds: close time, or the newest change to or in the session


def last_activity(store: GraphStore, session: Node) -> int:
    """When anything last happened to or in `session`: its close time once closed, its newest
    write otherwise (a new node, an update, an edge: its newest event) — or its restore from
    an archive, when that is later."""
    restored = store.events.restore_time(session.id)
    details = session.details_as(SessionDetails)
    if details.state is SessionState.CLOSED:
        return max(details.close_time or session.update_time, restored)
    newest = max(session.update_time, restored)
    event_time = store.events.last_session_event_time(session.id)
    if event_time:  # every write in the session made an event: the newest one says it all
        return max(newest, event_time)
    # Retention has trimmed its history: its newest node tells the last write apart from that.
    for create_time, node_id, _ in store.scan_session(session.id, reverse=True):
        node = store.get_node(node_id)
        newest = max(newest, create_time, node.update_time if node is not None else 0)
        break
    return newest


def archive_candidates(
    store: GraphStore, *, older_than: int, limit: int, page_token: str, max_bytes: int
) -> tuple[list[Candidate], str]:
    """Sessions idle (or closed) since before `older_than` µs, oldest first, paged."""
    want = page_size(limit)
    fingerprint = archive_fingerprint(older_than)
    after = decode_token(page_token, fingerprint)
    start = 0 if after is None else after[0]
    # A session created after the cutoff has been active since: it is never a candidate.
    positions = (
        (t, nid)
        for t, nid, _ in store.scan_kind(NodeKind.SESSION, start, older_than)
        if after is None or (t, nid) > after
    )

    def pick(node: Node) -> Candidate | None:
        activity = last_activity(store, node)
        return Candidate(node, activity) if activity < older_than else None

    found, last = _session_page(store, positions, want, pick, max_bytes)
    return found, encode_token(fingerprint, last) if last is not None else ""
