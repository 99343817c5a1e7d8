"""Pure key encoding: the byte layout of every column family. No I/O here.

Column families and their keys (ids are 16 raw UUID bytes, times 8-byte big-endian
microseconds, kinds one byte, `shard` the two-byte number of the shard the entry belongs to,
see `shards`):

    nodes       shard | id                                 -> the node's record
    by_session  shard | session | create time | id | kind  -> the node's record, framed
                                                              (sessions themselves excluded)
    by_kind     shard | kind | create time | id            -> session id or b""
    edges_out   shard | source | edge kind | target        -> encoded edge   (source's shard)
    edges_in    shard | target | edge kind | source        -> b""            (target's shard)
    names       shard | b"template/" | name                -> template id    (name's shard)
    session_events  shard | session | sequence             -> b""   (a session's events)
    routes      shard | id                                 -> the shard the node lives on
                (only for nodes not on the shard their id routes to: ids a caller chose, and
                ids made before ids carried shard tags; keyed by the id's own shard)
    meta        b"schema_version", b"shards", b"count/...", b"events/last", b"events/floor",
                b"registry/cursor", b"deleting/" | id, ... -> small values
    events      sequence (8 bytes)                         -> encoded event
                (a sequence is tick << 12 | shard, see `event_sequence`; the directory's
                log, its events of every shard in sequence order)

Big-endian fixed-width fields make byte order equal time order, so "a session by time" and
"a kind by time on one shard" are range scans; every shard is one key range of each column
family but `meta` and `events`.
"""

from __future__ import annotations

from memorygraph.model import MAX_TIME, EdgeKind, NodeKind

CF_NODES = "nodes"
CF_BY_SESSION = "by_session"
CF_BY_KIND = "by_kind"
CF_EDGES_OUT = "edges_out"
CF_EDGES_IN = "edges_in"
CF_NAMES = "names"
CF_META = "meta"
CF_EVENTS = "events"
CF_SESSION_EVENTS = "session_events"
CF_ROUTES = "routes"
# The column families whose keys start with their shard's number.
SHARDED_FAMILIES = (
    CF_NODES,
    CF_BY_SESSION,
    CF_BY_KIND,
    CF_EDGES_OUT,
    CF_EDGES_IN,
    CF_NAMES,
    CF_SESSION_EVENTS,
    CF_ROUTES,
)
COLUMN_FAMILIES = (*SHARDED_FAMILIES, CF_META, CF_EVENTS)
LAST_EVENT_KEY = b"events/last"
# A random id of this event log, made with the store: events restored from an archive go back
# only into the log they came from (their sequence numbers mean nothing in another).
LOG_ID_KEY = b"events/log_id"
# The first sequence retention keeps: events below it are gone for good (restores skip them).
EVENT_FLOOR_KEY = b"events/floor"
# How many events were ever written to the log, less those archival erased, and how many of
# them retention trimmed (two numbers: commits move the first, trimming the second, so neither
# waits for the other); retained = count - trimmed.
EVENT_COUNT_KEY = b"events/count"
EVENT_TRIMMED_KEY = b"events/trimmed"
# Before schema 6: how many sequences from the floor to the newest held no event.
EVENT_HOLES_KEY = b"events/holes"

# 1: the first layout. 2: adds the session_events index (built from the log on upgrade).
# 3: node records in the API's wire format; session index entries carry the kind in the key and
# the node's record, framed as a QueryBatch entry, as the value (rewritten on upgrade).
# 4: a session being deleted is hidden by a `deleting/` marker and has no session-event index
# (an older server would show it half deleted, so it must refuse the directory).
# 5: shards: keys of every column family but meta and events start with their shard's number;
# nodes not on the shard their id routes to have a route (written on upgrade).
# 6: event sequences carry a tick and the event's shard (`event_sequence`), so they increase
# but are not consecutive; the log keeps a count of its events instead of one of its holes.
SCHEMA_VERSION = 6
SCHEMA_VERSION_KEY = b"schema_version"
# How many shards the data directory has (decimal text), fixed when it is created.
SHARDS_KEY = b"shards"

SHARD_LEN = 2
ID_LEN = 16
TIME_LEN = 8

NODE_KIND_CODES: dict[NodeKind, int] = {
    NodeKind.SESSION: 1,
    NodeKind.PROMPT: 2,
    NodeKind.RESPONSE: 3,
    NodeKind.TOOL_INVOCATION: 4,
    NodeKind.AGENT: 5,
    NodeKind.TEMPLATE: 6,
}
NODE_KINDS_BY_CODE = {code: kind for kind, code in NODE_KIND_CODES.items()}

EDGE_KIND_CODES: dict[EdgeKind, int] = {kind: i for i, kind in enumerate(EdgeKind, start=1)}
EDGE_KINDS_BY_CODE = {code: kind for kind, code in EDGE_KIND_CODES.items()}


def cursor_key(reader: str) -> bytes:
    """Where a reader of the event log keeps its position (`registry/cursor`, ...)."""
    return reader.encode() + b"/cursor"


def time_bytes(micros: int) -> bytes:
    return max(0, min(micros, MAX_TIME)).to_bytes(TIME_LEN)


def session_index_key(
    shard: bytes, session_id: bytes, create_time: int, node_id: bytes, kind: NodeKind
) -> bytes:
    """shard | session | create time | node id | kind: the kind sits in the key so that a scan
    can filter by it without touching the value (the node's record)."""
    kind_code = bytes([NODE_KIND_CODES[kind]])
    return shard + session_id + time_bytes(create_time) + node_id + kind_code


def session_index_prefix(
    shard: bytes, session_id: bytes, create_time: int, node_id: bytes
) -> bytes:
    """A node's session index key without its kind: where its entry sorts."""
    return shard + session_id + time_bytes(create_time) + node_id


_SESSION_TIME = SHARD_LEN + ID_LEN


def session_index_entry(key: bytes) -> tuple[int, bytes, int]:
    """(create time, node id, kind code) from a session index key."""
    return (
        int.from_bytes(key[_SESSION_TIME : _SESSION_TIME + TIME_LEN]),
        key[_SESSION_TIME + TIME_LEN : -1],
        key[-1],
    )


def session_index_range(
    shard: bytes, session_id: bytes, start: int, end: int
) -> tuple[bytes, bytes]:
    """[lower, upper) of the session index for create times in [start, end)."""
    lower = shard + session_id
    return lower + time_bytes(start), lower + time_bytes(end)


def kind_index_key(shard: bytes, kind: NodeKind, create_time: int, node_id: bytes) -> bytes:
    return shard + bytes([NODE_KIND_CODES[kind]]) + time_bytes(create_time) + node_id


def kind_index_range(shard: bytes, kind: NodeKind, start: int, end: int) -> tuple[bytes, bytes]:
    prefix = shard + bytes([NODE_KIND_CODES[kind]])
    return prefix + time_bytes(start), prefix + time_bytes(end)


def index_position(key: bytes) -> tuple[int, bytes]:
    """(create time, node id) from the tail of a kind index key."""
    tail = key[-(TIME_LEN + ID_LEN) :]
    return int.from_bytes(tail[:TIME_LEN]), tail[TIME_LEN:]


def edge_out_key(shard: bytes, source: bytes, kind: EdgeKind, target: bytes) -> bytes:
    """An edge's record, on its source's shard."""
    return shard + source + bytes([EDGE_KIND_CODES[kind]]) + target


def edge_in_key(shard: bytes, target: bytes, kind: EdgeKind, source: bytes) -> bytes:
    """An edge's pointer from its target, on the target's shard."""
    return shard + target + bytes([EDGE_KIND_CODES[kind]]) + source


_EDGE_KIND = SHARD_LEN + ID_LEN


def split_edge_key(key: bytes) -> tuple[bytes, EdgeKind, bytes]:
    """(this node, kind, other node) from an edges_out or edges_in key."""
    return key[SHARD_LEN:_EDGE_KIND], EDGE_KINDS_BY_CODE[key[_EDGE_KIND]], key[_EDGE_KIND + 1 :]


def prefix_end(prefix: bytes) -> bytes:
    """The smallest key greater than every key starting with `prefix`."""
    stripped = prefix.rstrip(b"\xff")
    if not stripped:
        return b"\xff" * (len(prefix) + 1)
    return stripped[:-1] + bytes([stripped[-1] + 1])


# An event's sequence: a tick (microseconds since 2025-01-01T00:00:00Z, or one past the
# previous event's tick when that is later) shifted left by SHARD_BITS, or'ed with the number of
# the shard the event belongs to. Sequences of one log increase in commit order; those of
# events on different shards never collide, whichever process numbered them.
SHARD_BITS = 12
SEQUENCE_EPOCH = 1_735_689_600_000_000


def event_sequence(tick: int, shard: int) -> int:
    return (tick << SHARD_BITS) | shard


def sequence_tick(sequence: int) -> int:
    return sequence >> SHARD_BITS


def sequence_shard(sequence: int) -> int:
    """The shard of an event numbered since schema 6 (older numbers are plain counts)."""
    return sequence & ((1 << SHARD_BITS) - 1)


def event_key(sequence: int) -> bytes:
    return sequence.to_bytes(8)


def session_event_key(shard: bytes, session_id: bytes, sequence: int) -> bytes:
    return shard + session_id + sequence.to_bytes(8)


def session_event_sequence(key: bytes) -> int:
    """The sequence of a session_events key."""
    return int.from_bytes(key[SHARD_LEN + ID_LEN :])


DELETING_PREFIX = b"deleting/"


def deleting_key(session_id: bytes) -> bytes:
    """meta: a session being deleted in steps; gone from every read until then."""
    return DELETING_PREFIX + session_id


def restored_key(session_id: bytes) -> bytes:
    """meta: when a session was last restored from an archive (it counts as activity)."""
    return b"restored/" + session_id


def template_name_key(shard: bytes, name: str) -> bytes:
    return shard + b"template/" + name.encode()


def counter_key(name: str) -> bytes:
    return b"count/" + name.encode()
