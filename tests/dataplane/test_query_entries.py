"""A session query sends the session index's values as they are: no record is framed again or
copied on the way, and none is decoded but the last one read, to tell where the read stopped
(what makes StreamQuery as fast as the wire allows)."""

from __future__ import annotations

from pathlib import Path

import pytest
from memorygraph.codec import framing
from memorygraph.codec.nodes import decode_node
from memorygraph.graph import query as query_module
from memorygraph.graph.query import QueryFilter
from memorygraph.graph.service import GraphService
from memorygraph.model import NewNode, NewSession, NodeKind, format_id
from memorygraph.store import GraphStore, MemoryStore
from memorygraph.store.keys import CF_BY_SESSION, session_index_entry
from memorygraph.store.rocks import RocksStore
from memorygraph.v1 import graph_pb2 as pb


def test_a_session_stream_is_the_index_values_joined(monkeypatch: pytest.MonkeyPatch) -> None:
    kv = MemoryStore()
    service = GraphService(GraphStore(kv))
    session = service.create_session(NewSession(title="s"))
    made = service.create_nodes(
        [NewNode(NodeKind.PROMPT, session.id, f"q{i}", {"i": str(i)}) for i in range(50)]
    )
    shards = service.store.shards
    start = shards.prefix(shards.of_id(session.id)) + session.id
    stored = [value for _, value in kv.scan(CF_BY_SESSION, start, start + b"\xff")]
    calls: list[str] = []
    for name in ("frame", "unframe"):
        real = getattr(framing, name)
        monkeypatch.setattr(
            query_module, name, lambda *a, _n=name, _r=real: calls.append(_n) or _r(*a)
        )
    batches = list(service.stream_query(QueryFilter(session_id=session.id), batch_size=20, limit=0))
    assert [len(b) for b in batches] == [20, 20, 10]
    sent = [entry for batch in batches for entry in batch]
    assert all(a is b for a, b in zip(sent, stored, strict=True))  # the very same bytes
    assert calls == []
    joined = pb.QueryBatch.FromString(b"".join(sent))
    assert [n.id for n in joined.nodes] == [format_id(node.id) for node in made]
    # A metadata filter has to look inside, and only then unframes.
    picked = list(
        service.stream_query(
            QueryFilter(session_id=session.id, metadata=(("i", "7"),)), batch_size=20, limit=0
        )
    )
    assert [len(b) for b in picked] == [1] and calls.count("unframe") == 50


def _pages(store: GraphStore, query: QueryFilter, max_bytes: int) -> list[str]:
    """Every record `query` matches, page by page (each up to 1000 records and `max_bytes`)."""
    ids: list[str] = []
    token = ""
    while True:
        page = query_module.run_query(
            store, query, limit=1000, page_token=token, max_bytes=max_bytes
        )
        ids += [pb.Node.FromString(framing.unframe(e)).id for e in page.entries]
        if not page.next_page_token:
            return ids
        token = page.next_page_token


def test_reading_a_session_without_its_keys_finds_what_reading_its_keys_does(
    tmp_path: Path,
) -> None:
    # A whole session read in create-time order reads the index's values alone and works out
    # where it stopped from the last record; a kind filter or a descending read reads the keys.
    # Both agree, past RocksDB's read chunks, across page tokens and pages cut by size.
    service = GraphService(GraphStore(RocksStore(tmp_path / "db")))
    try:
        session = service.create_session(NewSession(title="s"))
        for start in range(0, 2600, 200):
            service.create_nodes(
                [
                    NewNode(
                        NodeKind.PROMPT,
                        session.id,
                        f"q{i} " + "x" * (i % 7 * 40),
                        {"third": str(i % 3 == 0)},
                    )
                    for i in range(start, start + 200)
                ]
            )
        store = service.store
        every_kind = QueryFilter(session_id=session.id, kinds=frozenset(NodeKind))
        by_keys = _pages(store, every_kind, max_bytes=1 << 30)
        assert len(by_keys) == 2600
        whole = QueryFilter(session_id=session.id)
        assert _pages(store, whole, max_bytes=1 << 30) == by_keys
        assert _pages(store, whole, max_bytes=20_000) == by_keys  # pages cut by size
        # A sparse filter reads on past the first chunk, from where the last record says.
        thirds = QueryFilter(session_id=session.id, metadata=(("third", "True"),))
        assert _pages(store, thirds, max_bytes=1 << 30) == by_keys[::3]
        newest_first = _pages(store, QueryFilter(session_id=session.id, descending=True), 1 << 30)
        assert newest_first == by_keys[::-1]
        streamed = service.stream_query(whole, batch_size=700, limit=0)
        batches = [[pb.Node.FromString(framing.unframe(e)).id for e in b] for b in streamed]
        assert [len(b) for b in batches] == [700, 700, 700, 500]
        assert [i for b in batches for i in b] == by_keys
        window = QueryFilter(
            session_id=session.id,
            start_time=decode_node(
                None, framing.unframe(_record(store, session.id, 1000))
            ).create_time,
        )
        assert _pages(store, window, max_bytes=1 << 30) == by_keys[1000:]
    finally:
        service.store.close()


def test_a_session_read_in_small_chunks_goes_on_from_each_last_record(tmp_path: Path) -> None:
    # Every chunk after the first starts where the last record of the one before says.
    service = GraphService(GraphStore(RocksStore(tmp_path / "db")))
    try:
        session = service.create_session(NewSession(title="s"))
        service.create_nodes([NewNode(NodeKind.PROMPT, session.id, f"q{i}") for i in range(3000)])
        store = service.store
        pairs = [e for chunk in store.scan_session_entries(session.id, first=3000) for e in chunk]
        chunks = list(store.scan_session_records(session.id, first=3))
        assert [len(c) for c in chunks[:3]] == [3, 12, 48] and len(chunks) > 5
        assert [r for chunk in chunks for r in chunk] == [record for _, record in pairs]
        middle = session_index_entry(pairs[1500][0])[:2]
        later = list(store.scan_session_records(session.id, after=middle, first=3))
        assert [r for chunk in later for r in chunk] == [record for _, record in pairs[1501:]]
    finally:
        service.store.close()


def _record(store: GraphStore, session_id: bytes, index: int) -> bytes:
    """The session index value of the session's `index`-th node (in create-time order)."""
    chunks = store.scan_session_entries(session_id, first=index + 1)
    return next(chunks)[index][1]
