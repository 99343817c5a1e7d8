"""Upgrades of data directories written by older versions, run on open before serving.

Each step writes in batches and records its version last: a crash midway leaves the old
version, and the next open runs the step again over what it already did (every write is
idempotent; records of either format are read).
"""

from __future__ import annotations

import logging

from memorygraph.model import Node, NodeKind
from memorygraph.store import keys
from memorygraph.store.kv import KeyValueStore, Op
from memorygraph.store.layout import indexed_session, node_index_ops, session_event_op
from memorygraph.store.records import (
    decode_event,
    decode_legacy_node,
    decode_node,
    encode_event,
    encode_node,
)

__all__ = ["upgrade"]

log = logging.getLogger("memorygraph.store")


def upgrade(kv: KeyValueStore, version: int) -> int:
    """Bring a data directory of schema `version` to the current one; returns that."""
    if version == 1:
        last = kv.get(keys.CF_META, keys.LAST_EVENT_KEY)
        _to_2(kv, int.from_bytes(last) if last else 0)
        version = 2
    if version == 2:
        _to_3(kv)
        version = 3
    if version == 3:
        # Schema 4 adds sessions hidden while they are deleted (`deleting/` markers, which a
        # schema-3 server would not honour); a schema-3 directory has none: only the version.
        kv.write([(keys.CF_META, keys.SCHEMA_VERSION_KEY, b"4")], sync=True)
        version = 4
    return version


def _any_node_record(node_id: bytes, raw: bytes) -> Node:
    """A node record of any schema (upgrades meet both): JSON arrays before schema 3."""
    return decode_legacy_node(node_id, raw) if raw[:1] == b"[" else decode_node(node_id, raw)


def _to_2(kv: KeyValueStore, last_sequence: int) -> None:
    """Schema 1 -> 2: build the session_events index from the retained log.

    The index entries and the new version go in batches, the version last: a crash midway
    leaves version 1 and the next start builds the index again (re-putting an entry is
    harmless)."""
    log.info("upgrading the data directory to schema version 2 (indexing session events)")
    ops: list[Op] = []
    indexed = 0
    exists: dict[bytes, bool] = {}  # only sessions still in the graph get index entries
    # Schema 1 trimmed without recording a floor, and had no archival holes: the oldest
    # retained event is where retention stopped.
    floor = last_sequence + 1
    for key, raw in kv.scan(keys.CF_EVENTS, keys.event_key(0), keys.event_key(2**63)):
        event = decode_event(int.from_bytes(key), raw, _any_node_record)
        floor = min(floor, event.sequence)
        session = indexed_session(event)
        if session is not None and session not in exists:
            exists[session] = kv.get(keys.CF_NODES, session) is not None
        if session is not None and exists[session]:
            ops.append(session_event_op(session, event.sequence))
            indexed += 1
        if len(ops) >= 10_000:
            kv.write(ops, sync=False)
            ops = []
    ops.append((keys.CF_META, keys.EVENT_FLOOR_KEY, floor.to_bytes(8)))
    ops.append((keys.CF_META, keys.SCHEMA_VERSION_KEY, b"2"))
    kv.write(ops, sync=True)
    log.info("schema version 2: indexed %d events", indexed)


def _to_3(kv: KeyValueStore) -> None:
    """Schema 2 -> 3: node records (and the node records inside events) from JSON to the
    API's wire format; session index entries carry their node's record.

    In batches, the version last: a crash midway leaves version 2 and the next start goes
    over everything again, passing by what is already converted."""
    log.info("upgrading the data directory to schema version 3 (wire-format node records)")
    ops: list[Op] = []
    nodes = events = 0

    def flush() -> None:
        nonlocal ops
        if len(ops) >= 1000:
            kv.write(ops, sync=False)
            ops = []

    for node_id, raw in kv.scan(keys.CF_NODES, b"", b"\xff" * (keys.ID_LEN + 1)):
        node = _any_node_record(node_id, raw)
        record = encode_node(node)
        ops.append((keys.CF_NODES, node_id, record))
        if node.session_id is not None and node.kind is not NodeKind.SESSION:
            legacy = keys.session_index_prefix(node.session_id, node.create_time, node_id)
            ops.append((keys.CF_BY_SESSION, legacy, None))
        ops += node_index_ops(node, record)
        nodes += 1
        flush()
    for key, raw in kv.scan(keys.CF_EVENTS, keys.event_key(0), keys.event_key(2**63)):
        event = decode_event(int.from_bytes(key), raw, _any_node_record)
        if event.node is not None:
            ops.append((keys.CF_EVENTS, key, encode_event(event)))
            events += 1
            flush()
    ops.append((keys.CF_META, keys.SCHEMA_VERSION_KEY, b"3"))
    kv.write(ops, sync=True)
    log.info("schema version 3: rewrote %d node records and %d events", nodes, events)
