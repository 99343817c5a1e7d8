"""Which records and index entries a change implies: written by every commit and rebuilt by the
upgrades of older data directories, so both produce the same layout."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from memorygraph.codec.framing import QUERY_BATCH_NODES, frame, unframe
from memorygraph.codec.nodes import record_position
from memorygraph.model import Edge, Event, Node, NodeKind, TemplateDetails
from memorygraph.store import keys
from memorygraph.store.changes import StoreChanges
from memorygraph.store.kv import Op
from memorygraph.store.records import encode_edge, encode_node
from memorygraph.store.shards import Shards

__all__ = [
    "GraphWrite",
    "graph_ops",
    "indexed_session",
    "name_op",
    "node_index_ops",
    "session_entry_position",
    "session_event_op",
    "session_index_op",
]


def indexed_session(event: Event) -> bytes | None:
    """The session whose event index lists `event`: that of a session's own history, None for
    global changes and the lifecycle markers of archival and restore."""
    return None if event.type.is_lifecycle else event.session_id


def session_event_op(shard: bytes, session_id: bytes, sequence: int, *, present: bool = True) -> Op:
    return (
        keys.CF_SESSION_EVENTS,
        keys.session_event_key(shard, session_id, sequence),
        b"" if present else None,
    )


def session_index_op(shard: bytes, node: Node, record: bytes | None) -> Op | None:
    """A session member's entry in the by-session index, carrying its record framed for a
    QueryBatch (None deletes it). Queries of a session read records from here without
    looking each node up."""
    if node.session_id is None or node.kind is NodeKind.SESSION:
        return None
    key = keys.session_index_key(shard, node.session_id, node.create_time, node.id, node.kind)
    value = frame(QUERY_BATCH_NODES, record) if record is not None else None
    return (keys.CF_BY_SESSION, key, value)


def session_entry_position(entry: bytes) -> tuple[int, bytes]:
    """(create time, node id) of the node whose session index entry (`session_index_op`'s
    value) is `entry`: where the entry sits in its session's index."""
    return record_position(unframe(entry))


def node_index_ops(shard: bytes, node: Node, record: bytes | None) -> list[Op]:
    """The index entries of `node` (on `shard`) with its `record`, or their deletion (None).
    A template's name goes on the shard of the name: see `name_op`."""
    present = record is not None
    ops: list[Op] = []
    if (entry := session_index_op(shard, node, record)) is not None:
        ops.append(entry)
    key = keys.kind_index_key(shard, node.kind, node.create_time, node.id)
    ops.append((keys.CF_BY_KIND, key, (node.session_id or b"") if present else None))
    return ops


def name_op(shard: bytes, template_id: bytes, name: str, present: bool) -> Op:
    """A template's entry in the names index (on its name's `shard`), or its deletion."""
    return (keys.CF_NAMES, keys.template_name_key(shard, name), template_id if present else None)


def _edge_ops(edge: Edge, record: bytes | None, locate: Callable[[bytes], bytes]) -> list[Op]:
    """Both entries of an edge: its record under its source, a pointer under its target, each
    on its node's shard."""
    source, target = edge.source_id, edge.target_id
    return [
        (keys.CF_EDGES_OUT, keys.edge_out_key(locate(source), source, edge.kind, target), record),
        (
            keys.CF_EDGES_IN,
            keys.edge_in_key(locate(target), target, edge.kind, source),
            b"" if record is not None else None,
        ),
    ]


class _Places:
    """Where the nodes of one change set live: those the change holds are placed by their
    session, others looked up with `locate` (a stored node may be routed)."""

    __slots__ = ("_known", "_locate", "filled", "routed", "shards")

    def __init__(self, shards: Shards, locate: Callable[[bytes], bytes]) -> None:
        self.shards = shards
        self._locate = locate
        self._known: dict[bytes, bytes] = {}
        self.routed = False  # whether a route is written
        self.filled: set[tuple[bytes, NodeKind]] = set()  # (shard, kind) of nodes written

    def node(self, node: Node) -> bytes:
        self._known[node.id] = shard = self.shards.node_prefix(node)
        return shard

    def route_op(self, node: Node, shard: bytes, present: bool) -> Op | None:
        """The route of a node not on the shard its id routes to (or its deletion)."""
        own = self.shards.route_of(node)
        if own is None:
            return None
        self.routed |= present
        return (keys.CF_ROUTES, own + node.id, shard if present else None)

    def locate(self, node_id: bytes) -> bytes:
        shard = self._known.get(node_id)
        return shard if shard is not None else self._locate(node_id)


def _node_ops(places: _Places, node: Node, record: bytes | None, *, created: bool) -> list[Op]:
    """A node's record, indexes, name and route (None: their deletion)."""
    shard = places.node(node)
    ops: list[Op] = [(keys.CF_NODES, shard + node.id, record)]
    present = record is not None
    if created:
        places.filled.add((shard, node.kind))
    if created or not present:
        ops += node_index_ops(shard, node, record)
        if isinstance(node.details, TemplateDetails):
            name = node.details.name
            shards = places.shards
            ops.append(name_op(shards.prefix(shards.of_name(name)), node.id, name, present))
        if (route := places.route_op(node, shard, present)) is not None:
            ops.append(route)
    elif (entry := session_index_op(shard, node, record)) is not None:
        ops.append(entry)
    return ops


@dataclass(slots=True)
class GraphWrite:
    """What a change set writes of the graph."""

    ops: list[Op]
    edge_records: dict[int, bytes]  # the records of new edges, by the edge objects' id()
    routed: bool  # whether a route is written
    filled: set[tuple[bytes, NodeKind]]  # (shard prefix, kind) of every node created


def graph_ops(
    changes: StoreChanges, shards: Shards, locate: Callable[[bytes], bytes]
) -> GraphWrite:
    """The record and index writes of the nodes and edges `changes` creates, updates and
    deletes, with the records of new edges (which their events reuse). Each node written gets
    its record (`Node.record`). `locate(node_id)` gives the shard prefix of a stored node the
    change set does not hold."""
    ops: list[Op] = []
    edge_records: dict[int, bytes] = {}
    places = _Places(shards, locate)
    for node in changes.created:
        # A new node may come encoded already (node creation measures its response).
        record = node.record if node.record is not None else encode_node(node)
        node.record = record
        ops += _node_ops(places, node, record, created=True)
    for _, after in changes.updated:
        after.record = record = encode_node(after)
        ops += _node_ops(places, after, record, created=False)
    for node in changes.deleted:
        places.node(node)
    for edge in changes.edges_created:
        edge_records[id(edge)] = record = encode_edge(edge)
        ops += _edge_ops(edge, record, places.locate)
    for edge in changes.edges_deleted:
        ops += _edge_ops(edge, None, places.locate)
    for node in changes.deleted:
        ops += _node_ops(places, node, None, created=False)
    return GraphWrite(ops, edge_records, places.routed, places.filled)
