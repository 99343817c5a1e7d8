"""Data directories written by earlier releases open, read and take writes.

`release_stores/schema4.jsonl` is a directory made by the release before ids carried shard tags,
`schema5.jsonl` one made by the release before event sequences carried ticks (`make_store.py`
run with that release's code; never regenerated). Each holds an open and a closed session, an
archived one, a deleted one, a template with an instantiated prompt, an agent, a cross-node edge
and a registry cursor; schema 4 has UUIDv7 ids."""

from __future__ import annotations

import json
from pathlib import Path

from memorygraph.graph.query import QueryFilter
from memorygraph.graph.service import GraphService
from memorygraph.model import (
    Direction,
    NewNode,
    NodeKind,
    PromptDetails,
    SessionDetails,
    SessionState,
    id_tag,
)
from memorygraph.store import GraphStore, KeyValueStore, keys
from memorygraph.store.keys import (
    CF_EDGES_OUT,
    CF_META,
    CF_NODES,
    CF_ROUTES,
    SCHEMA_VERSION,
    SHARDED_FAMILIES,
    SHARDS_KEY,
)
from memorygraph.v1 import graph_pb2 as pb

from .store_support import _raw

RELEASES = Path(__file__).parent / "release_stores"


def _load(kv: KeyValueStore, name: str) -> None:
    rows = [json.loads(line) for line in (RELEASES / name).read_text().splitlines()]
    ops = [(r["cf"], bytes.fromhex(r["key"]), bytes.fromhex(r["value"])) for r in rows]
    kv.write(ops, sync=True)


def _session_nodes(service: GraphService, session_id: bytes) -> list[pb.Node]:
    batches = service.stream_query(QueryFilter(session_id=session_id), batch_size=100, limit=0)
    return list(pb.QueryBatch.FromString(b"".join(e for b in batches for e in b)).nodes)


def test_a_schema_4_directory_opens_with_everything_in_it(kv: KeyValueStore) -> None:
    _load(kv, "schema4.jsonl")
    service = GraphService(GraphStore(kv))
    assert service.schema_version == SCHEMA_VERSION
    page = service.list_sessions(limit=10, page_token="", state=None, user_id="")
    sessions = {node.content: node for node in page.nodes}
    assert sorted(sessions) == ["closed", "open"]  # archived and deleted are gone
    closed = sessions["closed"].details_as(SessionDetails)
    assert closed.state is SessionState.CLOSED
    opened = sessions["open"]
    assert opened.details_as(SessionDetails).token_usage.total_tokens == 30 + 31 + 32
    nodes = _session_nodes(service, opened.id)
    assert nodes[-1].content == "Hello Ada"
    assert len(nodes) == 3 * 3 + 1
    counts = service.counts()
    assert counts.nodes[NodeKind.SESSION] == 2
    assert counts.nodes[NodeKind.PROMPT] == 3 + 1 + 2
    assert counts.active_sessions == 1
    assert service.store.cursor("registry") == 5
    assert service.store.events.last_sequence > 0


def test_a_schema_4_directory_is_split_into_shards_with_every_node_found_by_its_id(
    kv: KeyValueStore,
) -> None:
    """Ids made before ids carried tags route nowhere in particular: each node of a session
    on another shard than its id's gets a route, and every node and edge is found."""
    _load(kv, "schema4.jsonl")
    before = {key: value for key, value in kv.scan(CF_NODES, b"", b"\xff" * 17)}
    edges = {key for key in kv.scan_keys(CF_EDGES_OUT, b"", b"\xff" * 64)}
    service = GraphService(GraphStore(kv, shards=16))
    assert kv.get(CF_META, SHARDS_KEY) == b"16"
    stored = {cf: _raw(kv, cf) for cf in SHARDED_FAMILIES}  # each entry on its shard
    assert stored[CF_NODES] == before
    assert set(stored[CF_EDGES_OUT]) == edges
    assert len(stored[CF_ROUTES]) > 3
    for node_id in before:
        node = service.store.get_node(node_id)
        assert node is not None and node.id == node_id
    for key in edges:
        source, target = key[:16], key[17:]
        assert [e.target_id for e in service.store.edges(source)].count(target) == 1
        incoming = service.store.edges(target, Direction.INCOMING)
        assert source in [e.source_id for e in incoming]


def test_a_schema_4_directory_takes_new_writes_with_tagged_ids(kv: KeyValueStore) -> None:
    _load(kv, "schema4.jsonl")
    service = GraphService(GraphStore(kv))
    page = service.list_sessions(limit=10, page_token="", state=SessionState.ACTIVE, user_id="")
    (opened,) = page.nodes
    prompt = service.create_node(NewNode(NodeKind.PROMPT, opened.id, "one more"))
    assert id_tag(prompt.id) == id_tag(opened.id)  # an old session's id is hashed
    text, made = service.templates.instantiate(
        template_id=None,
        name="greeting",
        values={"name": "Grace"},
        session_id=opened.id,
        prompt=PromptDetails(),
        metadata={},
    )
    assert text == "Hello Grace" and made is not None
    assert len(_session_nodes(service, opened.id)) == 3 * 3 + 3


def test_a_schema_5_directory_keeps_its_event_numbers_and_numbers_new_ones_above(
    kv: KeyValueStore,
) -> None:
    """Events numbered before sequences carried ticks keep their numbers (resume positions,
    the registry's cursor and archives stay valid); the log counts them once; new events are
    numbered above every old one, with their shard."""
    _load(kv, "schema5.jsonl")
    old = [key for key in kv.scan_keys(keys.CF_EVENTS, b"", b"\xff" * 9)]
    assert kv.get(CF_META, keys.EVENT_HOLES_KEY) is not None
    service = GraphService(GraphStore(kv))
    assert service.schema_version == SCHEMA_VERSION == 6
    assert kv.get(CF_META, keys.EVENT_HOLES_KEY) is None
    log = service.store.events
    assert [keys.event_key(e.sequence) for e in log.read(0, 2**63, 1000)] == old
    assert log.retained() == len(old) == 65
    last = log.last_sequence
    assert last == 81 and service.store.cursor("registry") == 5
    page = service.list_sessions(limit=10, page_token="", state=SessionState.ACTIVE, user_id="")
    (opened,) = page.nodes
    assert log.session_events(opened.id)[0].sequence < last
    prompt = service.create_node(NewNode(NodeKind.PROMPT, opened.id, "one more"))
    new = log.read(last + 1, 2**63, 100)
    assert new and all(e.sequence > last for e in new)
    assert {keys.sequence_shard(e.sequence) for e in new} == {service.store.shards.of_id(opened.id)}
    assert new[0].node is not None and new[0].node.id == prompt.id
    assert log.retained() == 65 + len(new)
    assert GraphStore(kv).events.retained() == 65 + len(new)
