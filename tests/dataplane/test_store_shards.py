"""Shards in the store: a count fixed when a data directory is made, every entry on the shard of
its session, nodes of ids that do not route themselves found by their route, and data
directories from before shards split on open (whole, or finishing after a crash)."""

from __future__ import annotations

import os
import subprocess
import uuid
from collections.abc import Callable
from pathlib import Path

import pytest
from memorygraph.config import load_config
from memorygraph.errors import ConfigError, InvalidArgument
from memorygraph.graph.export import decode_export
from memorygraph.graph.service import GraphService
from memorygraph.model import (
    Direction,
    EdgeKind,
    NewEdge,
    NewNode,
    NewSession,
    Node,
    NodeKind,
    new_id,
    parse_id,
)
from memorygraph.server import start_server
from memorygraph.store import (
    GraphStore,
    KeyValueStore,
    MemoryStore,
    keys,
    open_rocks_store,
    upgrade,
)
from memorygraph.store.graph_store import IncompatibleSchema, ShardCountMismatch
from memorygraph.store.kv import Op
from memorygraph.store.shards import DEFAULT_SHARDS, Shards

from .conftest import REPO, serve_command
from .store_support import Engine, _populated, _raw, _unshard

LAYOUT = [cf for cf in keys.COLUMN_FAMILIES if cf != keys.CF_META]


def test_the_shard_of_an_id_and_of_a_name_is_their_tag_mod_the_count() -> None:
    """The documented vectors: the tag of 0190a1b2-… is 0x9c07 (39943), that of the template
    name `greeting` 0x18f6 (6390)."""
    legacy = parse_id("0190a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5b", "id")
    assert Shards(64).of_id(legacy) == 39943 % 64 == 7
    assert Shards(1).of_id(legacy) == 0
    assert Shards(4096).of_id(legacy) == 39943 % 4096
    assert Shards(64).of_name("greeting") == 6390 % 64 == 54
    tagged = new_id(0xABCD)
    assert Shards(16).of_id(tagged) == 0xABCD % 16
    assert Shards(64).prefix(7) == b"\x00\x07"
    for count in (1, 64, 4096):
        shards = Shards(count)
        for raw in [legacy, tagged, *(uuid.uuid4().bytes for _ in range(50)), new_id()]:
            assert shards.prefix_of(raw) == shards.prefix(shards.of_id(raw))


@pytest.mark.parametrize("count", [0, 3, 48, 8192, -2])
def test_a_shard_count_that_is_not_a_power_of_two_up_to_4096_is_refused(count: int) -> None:
    with pytest.raises(InvalidArgument, match=f"power of two from 1 to 4096, not {count}"):
        GraphStore(MemoryStore(), shards=count)


def test_the_shard_count_is_set_when_the_store_is_made_and_kept(kv: KeyValueStore) -> None:
    assert GraphStore(kv).shards.count == DEFAULT_SHARDS == 64
    assert kv.get(keys.CF_META, keys.SHARDS_KEY) == b"64"
    assert GraphStore(kv).shards.count == 64
    assert GraphStore(kv, shards=64).shards.count == 64
    with pytest.raises(ShardCountMismatch, match="has 64 shards and cannot be opened with 16"):
        GraphStore(kv, shards=16)
    assert kv.get(keys.CF_META, keys.SHARDS_KEY) == b"64"


def _spread(service: GraphService, count: int) -> list[bytes]:
    """`count` sessions, each with a prompt; their ids in the order they were made."""
    made = []
    for i in range(count):
        session = service.create_session(NewSession(title=f"s{i}"))
        service.create_node(NewNode(NodeKind.PROMPT, session.id, f"q{i}"))
        made.append(session.id)
    return made


@pytest.mark.parametrize("shards", [1, 2, 64, 4096])
def test_sessions_on_every_shard_are_listed_in_the_order_they_were_made(shards: int) -> None:
    service = GraphService(GraphStore(MemoryStore(), shards=shards))
    made = _spread(service, 60)
    assert len({service.store.shards.of_id(s) for s in made}) > min(shards, 60) // 2
    listed = [s.id for s in _sessions(service, 100)]
    assert listed == made[::-1]  # newest first, across every shard
    first = service.list_sessions(limit=7, page_token="", state=None, user_id="")
    second = service.list_sessions(
        limit=7, page_token=first.next_page_token, state=None, user_id=""
    )
    assert [s.id for s in first.nodes + second.nodes] == made[::-1][:14]
    prompts = list(service.store.scan_kind(NodeKind.PROMPT))
    assert [session for _, _, session in prompts] == made
    assert [
        session for _, _, session in service.store.scan_kind(NodeKind.PROMPT, reverse=True)
    ] == made[::-1]


def _sessions(service: GraphService, limit: int) -> list[Node]:
    return service.list_sessions(limit=limit, page_token="", state=None, user_id="").nodes


def test_a_node_of_its_own_id_in_a_session_elsewhere_is_found_through_its_route(
    kv: KeyValueStore,
) -> None:
    service = GraphService(GraphStore(kv, shards=64))
    shards = service.store.shards
    session = service.create_session(NewSession(title="s"))
    own = next(
        i
        for i in (uuid.uuid4().bytes for _ in range(1000))
        if shards.of_id(i) != shards.of_id(session.id)
    )
    prompt = service.create_node(NewNode(NodeKind.PROMPT, session.id, "q", node_id=own))
    other = service.create_session(NewSession(title="other"))
    service.create_edge(NewEdge(other.id, own, EdgeKind.REFERENCES))
    assert _raw(kv, keys.CF_ROUTES) == {own: shards.prefix(shards.of_id(session.id))}
    assert service.get_node(own) == prompt
    assert [e.source_id for e in service.store.edges(own, Direction.INCOMING)] == [other.id]
    assert service.get_nodes([own, session.id])[0] == [prompt, service.get_session(session.id)]
    for cf in LAYOUT:
        _raw(kv, cf)  # every entry on its shard
    reopened = GraphService(GraphStore(kv))
    assert reopened.get_node(own) == prompt
    reopened.delete_session(session.id)
    assert _raw(kv, keys.CF_ROUTES) == {}
    assert list(reopened.store.edges(other.id, Direction.BOTH)) == []


def _populated_with_routes(kv: KeyValueStore) -> GraphService:
    """A populated store with a node of its own id in a session on another shard."""
    service, ids = _populated(kv)
    shards = service.store.shards
    own = next(
        i
        for i in (uuid.uuid4().bytes for _ in range(1000))
        if shards.of_id(i) != shards.of_id(ids["keep"])
    )
    service.create_node(NewNode(NodeKind.PROMPT, ids["keep"], "mine", node_id=own))
    service.create_edge(NewEdge(ids["prompt"], own, EdgeKind.REFERENCES))
    service.templates.create(name="greeting", content="Hello", variables=[], metadata={})
    return service


def test_a_store_from_before_shards_is_split_into_them_on_open(kv: KeyValueStore) -> None:
    service = _populated_with_routes(kv)
    layout = {cf: _raw(kv, cf) for cf in LAYOUT}
    events = service.store.events.read(1, service.store.events.last_sequence, 1000)
    assert layout[keys.CF_ROUTES]
    _unshard(kv)
    assert kv.get(keys.CF_META, keys.SHARDS_KEY) is None

    upgraded = GraphStore(kv)
    assert upgraded.schema_version == keys.SCHEMA_VERSION == 6
    assert upgraded.shards.count == DEFAULT_SHARDS
    # Every entry where the current code puts it, byte for byte, routes included.
    assert {cf: _raw(kv, cf) for cf in LAYOUT} == layout
    assert upgraded.events.read(1, upgraded.events.last_sequence, 1000) == events
    assert GraphStore(kv).schema_version == 6
    assert {cf: _raw(kv, cf) for cf in LAYOUT} == layout


def test_a_store_from_before_shards_takes_the_count_it_is_first_opened_with() -> None:
    kv = MemoryStore()
    service = GraphService(GraphStore(kv, shards=8))
    made = _spread(service, 20)
    _unshard(kv)
    upgraded = GraphService(GraphStore(kv, shards=8))
    assert kv.get(keys.CF_META, keys.SHARDS_KEY) == b"8"
    assert [s.id for s in _sessions(upgraded, 100)] == made[::-1]
    for cf in LAYOUT:
        _raw(kv, cf)


class _CrashAt:
    """A store's `write` that fails at its `at`-th call, as a crash there would."""

    def __init__(self, write: Callable[..., None], at: int) -> None:
        self.write, self.at, self.calls = write, at, 0

    def __call__(self, ops: list[Op], *, sync: bool) -> None:
        self.calls += 1
        if self.calls == self.at:
            raise OSError("crash")
        self.write(ops, sync=sync)


def test_a_split_into_shards_cut_short_at_any_write_finishes_on_the_next_open(
    engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A crash after any batch of the conversion (small batches here) leaves schema 4 over a
    mix of old and new keys; the next open converts the rest and ends where an uncut one
    does."""
    monkeypatch.setattr(upgrade, "_BATCH", 5)
    kv = engine.open()
    _populated_with_routes(kv)
    layout = {cf: _raw(kv, cf) for cf in LAYOUT}
    writes = 0
    for crash_at in range(1, 200):
        _unshard(kv)
        real = kv.write
        monkeypatch.setattr(kv, "write", _CrashAt(real, crash_at))
        try:
            GraphStore(kv)
        except OSError:
            monkeypatch.setattr(kv, "write", real)
            assert kv.get(keys.CF_META, keys.SCHEMA_VERSION_KEY) in (b"4", b"5")
            assert GraphStore(kv).schema_version == 6
            assert {cf: _raw(kv, cf) for cf in LAYOUT} == layout
            writes += 1
            continue
        monkeypatch.setattr(kv, "write", real)
        break
    assert writes > 10  # it was cut short after many different batches
    assert {cf: _raw(kv, cf) for cf in LAYOUT} == layout
    kv.close()


def _serve(data_dir: Path, shards: int) -> subprocess.CompletedProcess[str]:
    """`memorygraph serve --shards` that is expected to refuse to start."""
    return subprocess.run(
        serve_command(data_dir, 0, 0, "--shards", str(shards)),
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": str(REPO / "dataplane")},
        timeout=60,
    )


def test_serve_refuses_another_shard_count_than_its_data_directory_has(tmp_path: Path) -> None:
    store = GraphStore(open_rocks_store(str(tmp_path / "data")), shards=16)
    store.close()
    result = _serve(tmp_path / "data", 32)
    assert result.returncode == 2, result.stderr
    assert "has 16 shards and cannot be opened with 32" in result.stderr
    assert "--shards 16" in result.stderr
    assert "Traceback" not in result.stderr
    bad = _serve(tmp_path / "other", 48)
    assert bad.returncode == 2, bad.stderr
    assert "shards" in bad.stderr and "power of two" in bad.stderr
    assert not (tmp_path / "other").exists()


@pytest.mark.parametrize("outgoing", [True, False])
def test_archiving_a_session_linked_to_one_being_deleted_leaves_no_edge_behind(
    kv: KeyValueStore, outgoing: bool
) -> None:
    """An edge between a node of its own id (routed) and a session being deleted goes with the
    archived node: no edge may outlive a node it touches, and once the node and its route are
    gone nothing could find that edge again."""
    service = GraphService(GraphStore(kv, shards=64))
    shards = service.store.shards
    archived = service.create_session(NewSession(title="archived"))
    doomed = service.create_session(NewSession(title="doomed"))
    own = next(
        i
        for i in (uuid.uuid4().bytes for _ in range(1000))
        if shards.of_id(i) != shards.of_id(archived.id)
    )
    mine = service.create_node(NewNode(NodeKind.PROMPT, archived.id, "a", node_id=own))
    theirs = service.create_node(NewNode(NodeKind.PROMPT, doomed.id, "b"))
    source, target = (mine, theirs) if outgoing else (theirs, mine)
    service.create_edge(NewEdge(source.id, target.id, EdgeKind.REFERENCES))
    with service._writer.transaction() as tx:  # DeleteSession's first commit: hidden
        tx.hide_sessions.append(doomed.id)
    export = service.archive.export_for_archive(archived.id)
    data = export.encode()
    service.archive.archive_session(archived.id, content_sha256=export.sha256())
    service.deletion.finish(doomed.id)
    for cf in LAYOUT:
        _raw(kv, cf)  # every entry on its shard
    assert _raw(kv, keys.CF_EDGES_OUT) == {} and _raw(kv, keys.CF_EDGES_IN) == {}
    assert service.counts().edges == 0
    service.archive.restore_session(decode_export(data))
    kinds = [e.kind for e in service.get_edges(own, Direction.BOTH, [])]
    assert kinds == [EdgeKind.BELONGS_TO]
    assert service.counts().edges == 1


def test_a_directory_of_a_newer_schema_is_refused_without_a_write(kv: KeyValueStore) -> None:
    kv.write([(keys.CF_META, keys.SCHEMA_VERSION_KEY, b"99")], sync=True)
    with pytest.raises(IncompatibleSchema, match="schema version 99"):
        GraphStore(kv, shards=8)
    assert kv.get(keys.CF_META, keys.SHARDS_KEY) is None


def test_a_start_refused_for_its_shard_count_leaves_the_directory_free(tmp_path: Path) -> None:
    GraphStore(open_rocks_store(str(tmp_path / "data")), shards=8).close()
    settings = {"data_dir": tmp_path / "data", "host": "127.0.0.1", "port": 0, "metrics_port": 0}
    with pytest.raises(ConfigError, match="has 8 shards and cannot be opened with 16") as refused:
        start_server(load_config(None, {**settings, "shards": 16}, environ={}))
    # The refusal is still at hand (its traceback holds every frame): the store is closed all
    # the same, and the directory can be opened again, not "in use by another process".
    running = start_server(load_config(None, settings, environ={}))
    try:
        assert running.store.shards.count == 8 and refused.value is not None
    finally:
        running.stop(grace=0)
