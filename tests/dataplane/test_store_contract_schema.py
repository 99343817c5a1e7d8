"""Schema versions on both engines: written on first open, newer refused, schema 2 upgraded."""

from __future__ import annotations

import json

import pytest
from memorygraph.model import Node, NodeKind, details_fields
from memorygraph.store import GraphStore, KeyValueStore
from memorygraph.store.graph_store import IncompatibleSchema
from memorygraph.store.keys import COLUMN_FAMILIES, SCHEMA_VERSION
from memorygraph.store.kv import Op
from memorygraph.store.records import decode_event, decode_legacy_node, decode_node, encode_node

from .store_support import _all, _kind, _populated, _raw, _unshard


def test_schema_version_is_written_when_a_store_is_first_opened(kv: KeyValueStore) -> None:
    assert kv.get("meta", b"schema_version") is None
    store = GraphStore(kv)
    assert store.schema_version == SCHEMA_VERSION
    assert kv.get("meta", b"schema_version") == str(SCHEMA_VERSION).encode()
    GraphStore(kv)  # opening again accepts its own version
    assert kv.get("meta", b"schema_version") == str(SCHEMA_VERSION).encode()


def test_a_store_written_by_a_newer_schema_is_refused(kv: KeyValueStore) -> None:
    GraphStore(kv)
    kv.write([("meta", b"schema_version", str(SCHEMA_VERSION + 1).encode())], sync=True)
    with pytest.raises(IncompatibleSchema, match=f"schema version {SCHEMA_VERSION + 1}"):
        GraphStore(kv)


def _legacy_record(node: Node) -> bytes:
    """A node record as schema 2 wrote it: a compact JSON array."""
    session = node.session_id.hex() if node.session_id is not None else None
    row = [node.kind.value, session, node.content, node.metadata]
    row += [node.create_time, node.update_time, details_fields(node.details)]
    return json.dumps(row, ensure_ascii=False, separators=(",", ":")).encode()


def _downgrade_to_schema_2(kv: KeyValueStore) -> None:
    """Rewrite a store of today the way schema 2 laid it out: no shards, JSON node records
    (in events too) and session index entries keyed without the kind, holding only the kind."""
    _unshard(kv)
    ops: list[Op] = []
    for node_id, record in _all(kv, "nodes"):
        node = decode_node(node_id, record)
        ops.append(("nodes", node_id, _legacy_record(node)))
        if node.session_id is not None and node.kind is not NodeKind.SESSION:
            key = node.session_id + node.create_time.to_bytes(8) + node.id
            ops.append(("by_session", key + _kind(node.kind), None))
            ops.append(("by_session", key, _kind(node.kind)))
    for key, raw in _all(kv, "events"):
        event = decode_event(int.from_bytes(key), raw)
        if event.node is not None:
            header = raw.partition(b"\n")[0]
            ops.append(("events", key, header + b"\n" + _legacy_record(event.node)))
    ops.append(("meta", b"schema_version", b"2"))
    kv.write(ops, sync=True)


def test_a_schema_2_store_is_upgraded_to_wire_format_records_on_open(kv: KeyValueStore) -> None:
    service, ids = _populated(kv)
    service.update_node(ids["prompt"], content="edited", metadata={"k": "v"})
    service.close_session(ids["keep"])
    layout = {cf: _raw(kv, cf) for cf in COLUMN_FAMILIES if cf != "meta"}
    events = service.store.events.read(1, service.store.events.last_sequence, 1000)
    _downgrade_to_schema_2(kv)
    assert _raw(kv, "nodes") != layout["nodes"]

    upgraded = GraphStore(kv)
    assert upgraded.schema_version == SCHEMA_VERSION == 6
    assert kv.get("meta", b"schema_version") == b"6"
    # Byte for byte what the current schema writes itself, events included.
    assert {cf: _raw(kv, cf) for cf in COLUMN_FAMILIES if cf != "meta"} == layout
    assert upgraded.events.read(1, upgraded.events.last_sequence, 1000) == events
    # Opening again changes nothing.
    assert GraphStore(kv).schema_version == 6
    assert {cf: _raw(kv, cf) for cf in COLUMN_FAMILIES if cf != "meta"} == layout


def test_an_upgrade_interrupted_midway_finishes_on_the_next_open(kv: KeyValueStore) -> None:
    """The upgrade writes in batches with the version last: a crash leaves version 2 over a
    mix of converted and unconverted records, which the next open takes as it finds them."""
    _populated(kv)
    layout = {cf: _raw(kv, cf) for cf in COLUMN_FAMILIES if cf != "meta"}
    _downgrade_to_schema_2(kv)
    # Half the node records were converted before the crash.
    for node_id, record in _all(kv, "nodes")[::2]:
        node = decode_legacy_node(node_id, record)
        kv.write([("nodes", node_id, encode_node(node))], sync=True)
    assert GraphStore(kv).schema_version == 6
    assert {cf: _raw(kv, cf) for cf in COLUMN_FAMILIES if cf != "meta"} == layout


def test_a_schema_3_store_is_opened_and_marked_as_the_current_schema(kv: KeyValueStore) -> None:
    """Schema 4 only adds what a deletion in steps writes; a schema-3 store converts by
    recording the new version (and then splits into shards)."""
    _populated(kv)
    layout = {cf: _raw(kv, cf) for cf in COLUMN_FAMILIES if cf != "meta"}
    _unshard(kv)
    kv.write([("meta", b"schema_version", b"3")], sync=True)
    assert GraphStore(kv).schema_version == 6
    assert kv.get("meta", b"schema_version") == b"6"
    assert {cf: _raw(kv, cf) for cf in COLUMN_FAMILIES if cf != "meta"} == layout
