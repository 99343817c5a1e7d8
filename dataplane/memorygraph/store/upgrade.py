"""Upgrades of data directories written by older versions, run on open before serving.

Each step writes in batches and records its version last: a crash midway leaves the old
version, and the next open runs the step again over what it already did (every write is
idempotent; records of either format are read).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator

from memorygraph.model import Node, NodeKind, TemplateDetails
from memorygraph.store import keys
from memorygraph.store.kv import KeyValueStore, Op
from memorygraph.store.layout import indexed_session, name_op, node_index_ops, session_event_op
from memorygraph.store.records import (
    decode_event,
    decode_legacy_node,
    decode_node,
    encode_event,
    encode_node,
)
from memorygraph.store.shards import MAX_SHARDS, Shards

__all__ = ["upgrade"]

log = logging.getLogger("memorygraph.store")


# Before schema 5 the layout was the one of today with no shard numbers in front of the keys:
# the steps up to 4 write their keys with this (empty) shard prefix.
_UNSHARDED = b""


def upgrade(kv: KeyValueStore, version: int, shards: Shards) -> int:
    """Bring a data directory of schema `version` to the current one, in `shards` shards;
    returns that version."""
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
    if version == 4:
        _to_5(kv, shards)
        version = 5
    if version == 5:
        _to_6(kv)
        version = 6
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
            ops.append(session_event_op(_UNSHARDED, session, event.sequence))
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
            legacy = keys.session_index_prefix(
                _UNSHARDED, node.session_id, node.create_time, node_id
            )
            ops.append((keys.CF_BY_SESSION, legacy, None))
        ops += node_index_ops(_UNSHARDED, node, record)
        if isinstance(node.details, TemplateDetails):
            ops.append(name_op(_UNSHARDED, node_id, node.details.name, True))
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


# The length of every key of the column families of fixed-width keys before schema 5 (names,
# of variable length, start with b"template/" then, and with a shard number below 0x10 since).
_UNSHARDED_LENGTHS = {
    keys.CF_NODES: keys.ID_LEN,
    keys.CF_BY_SESSION: 2 * keys.ID_LEN + keys.TIME_LEN + 1,
    keys.CF_BY_KIND: 1 + keys.TIME_LEN + keys.ID_LEN,
    keys.CF_EDGES_OUT: 2 * keys.ID_LEN + 1,
    keys.CF_EDGES_IN: 2 * keys.ID_LEN + 1,
    keys.CF_SESSION_EVENTS: keys.ID_LEN + 8,
}
assert MAX_SHARDS <= 0x1000  # a shard prefix starts with a byte below 0x10
_BATCH = 1000  # writes per batch of the conversion to shards


def _unsharded(cf: str, key: bytes) -> bool:
    """Whether `key` of `cf` is still in the layout before shards."""
    if cf == keys.CF_NAMES:
        return key[:1] >= b"\x10"
    return len(key) == _UNSHARDED_LENGTHS[cf]


def _to_5(kv: KeyValueStore, shards: Shards) -> None:
    """Schema 4 -> 5: every key of the sharded column families gets its shard's number in
    front; a node not on the shard its id routes to (a caller's id, or one made before ids
    carried tags, in a session elsewhere) gets a route.

    Each batch writes the new keys and deletes the old ones, the version last: after a crash
    the next start goes over every column family again and converts the keys still in the old
    layout (old and new keys differ in length, or in their first byte for names). Nodes go
    first: the edges are placed by the nodes' routes."""
    log.info("upgrading the data directory to schema version 5 (%d shards)", shards.count)
    ops: list[Op] = []
    converted = 0

    def flush(force: bool = False) -> None:
        nonlocal ops
        if ops and (force or len(ops) >= _BATCH):
            kv.write(ops, sync=False)
            ops = []

    prefix_of = shards.prefix_of

    def locate(node_id: bytes) -> bytes:
        own = prefix_of(node_id)
        routed = kv.get(keys.CF_ROUTES, own + node_id)
        return routed if routed is not None else own

    placers: list[tuple[str, Callable[[bytes, bytes], bytes]]] = [
        (keys.CF_BY_SESSION, lambda key, _: prefix_of(key[: keys.ID_LEN])),
        (keys.CF_BY_KIND, lambda key, value: prefix_of(value or key[-keys.ID_LEN :])),
        (keys.CF_EDGES_OUT, lambda key, _: locate(key[: keys.ID_LEN])),
        (keys.CF_EDGES_IN, lambda key, _: locate(key[: keys.ID_LEN])),
        (keys.CF_SESSION_EVENTS, lambda key, _: prefix_of(key[: keys.ID_LEN])),
        (keys.CF_NAMES, lambda key, _: shards.prefix(shards.of_name(key[9:].decode()))),
    ]
    for node_id, raw in _old_keys(kv, keys.CF_NODES):
        node = decode_node(node_id, raw)
        shard = shards.node_prefix(node)
        ops += [(keys.CF_NODES, node_id, None), (keys.CF_NODES, shard + node_id, raw)]
        if (own := shards.route_of(node)) is not None:
            ops.append((keys.CF_ROUTES, own + node_id, shard))
        converted += 1
        flush()
    flush(force=True)  # the routes are read by the edges' placement below
    for cf, place in placers:
        for key, value in _old_keys(kv, cf):
            ops += [(cf, key, None), (cf, place(key, value) + key, value)]
            converted += 1
            flush()
    ops.append((keys.CF_META, keys.SCHEMA_VERSION_KEY, b"5"))
    kv.write(ops, sync=True)
    log.info("schema version 5: placed %d keys on %d shards", converted, shards.count)


def _old_keys(kv: KeyValueStore, cf: str) -> Iterator[tuple[bytes, bytes]]:
    """The entries of `cf` still in the layout before shards."""
    for key, value in kv.scan(cf, b"", b"\xff" * 64):
        if _unsharded(cf, key):
            yield key, value


def _to_6(kv: KeyValueStore) -> None:
    """Schema 5 -> 6: the log counts its events (instead of the sequences without one).

    Events numbered so far keep their numbers, which are below every sequence numbered from
    now on (see `keys.event_sequence`): resume positions, cursors and archives stay valid. One
    batch: counting is read-only, and a crash before it leaves schema 5 to count again."""
    raw = kv.get(keys.CF_META, keys.EVENT_FLOOR_KEY)
    floor = int.from_bytes(raw) if raw else 1
    count = sum(1 for _ in kv.scan_keys(keys.CF_EVENTS, keys.event_key(floor), b"\xff" * 9))
    kv.write(
        [
            (keys.CF_META, keys.EVENT_COUNT_KEY, count.to_bytes(8, signed=True)),
            (keys.CF_META, keys.EVENT_TRIMMED_KEY, (0).to_bytes(8, signed=True)),
            (keys.CF_META, keys.EVENT_HOLES_KEY, None),
            (keys.CF_META, keys.SCHEMA_VERSION_KEY, b"6"),
        ],
        sync=True,
    )
    log.info("schema version 6: the event log holds %d events", count)
