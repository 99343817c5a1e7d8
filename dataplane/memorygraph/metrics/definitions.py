"""The data plane's Prometheus metrics, registered in the default registry on import, and the
`observe_*` helpers that update several of them at once.

The server's own `memorygraph_*` series are named here (the plugins, the registry reporter and
the archive job define theirs beside their code); the docs name them, so a name
changes only with the docs. This module only defines and updates metrics: the lock-free
counting is in `per_thread` and the HTTP endpoint in `endpoint`.
"""

from __future__ import annotations

from prometheus_client import REGISTRY, Counter, Gauge, Histogram

from memorygraph.metrics.per_thread import RpcStats

__all__ = [
    "ARCHIVED_BYTES",
    "ARCHIVED_SESSIONS",
    "ARCHIVE_LAST_SUCCESS",
    "ARCHIVE_REFUSED",
    "AUTH_KEYS",
    "AUTH_KEY_RELOADS",
    "COMMIT_GROUP_SIZE",
    "COMMIT_SYNC_LATENCY",
    "EVENT_FANOUT_LAG",
    "EVENT_LAST_SEQUENCE",
    "EVENT_LOG_EVENTS",
    "EVENT_SUBSCRIBERS",
    "EVENT_SUBSCRIBER_BUFFERED",
    "EVENT_SUBSCRIBER_BUFFERED_BYTES",
    "OPEN_STREAMS",
    "READS_SPARED",
    "READ_THREADS",
    "RESTORED_SESSIONS",
    "RESTORE_BYTES",
    "RPC",
    "RPC_REJECTED",
    "SHARDS_OWNED",
    "SHARD_MOVES",
    "SHARD_MOVE_FENCE",
    "STALLED_STREAMS",
    "STORE_BYTES",
    "STORE_COUNTS",
    "observe_archived",
    "observe_group_commit",
    "observe_rejection",
]

COMMIT_GROUP_SIZE = Histogram(
    "memorygraph_commit_group_size",
    "Writes made durable by one write-ahead-log sync (durable mode)",
    buckets=(1, 2, 4, 8, 16, 32, 64, 128, 256),
)
COMMIT_SYNC_LATENCY = Histogram(
    "memorygraph_commit_sync_seconds",
    "Time one write-ahead-log sync took (durable mode)",
    buckets=(0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.5),
)
OPEN_STREAMS = Gauge("memorygraph_open_streams", "Long-lived streams (events, ingest) open now")
READ_THREADS = Gauge(
    "memorygraph_read_threads", "Threads unary reads run on: the core_workers and spares started"
)
READS_SPARED = Counter(
    "memorygraph_reads_spared",
    "Unary reads run by a spare thread after waiting 20 ms for the core_workers threads",
)
STALLED_STREAMS = Counter(
    "memorygraph_streams_stalled",
    "Long-lived streams ended because their client took no message for the write timeout",
    ["method"],
)
AUTH_KEYS = Gauge("memorygraph_auth_keys", "API keys accepted now (0 with authentication off)")
AUTH_KEY_RELOADS = Counter(
    "memorygraph_auth_key_reloads",
    "Re-reads of a changed API keys file, by result (ok, empty, unreadable: no key of the file "
    "is accepted then)",
    ["result"],
)
RPC_REJECTED = Counter(
    "memorygraph_rpc_rejected",
    "RPCs refused before any work (authentication, stream cap), by method and code",
    ["method", "code"],
)
FORWARDED_CALLS = Counter(
    "memorygraph_forwarded_calls",
    "Calls about one shard that reached a worker not owning it and were passed on to the "
    "owner, by method",
    ["method"],
)
REDIRECTED_CALLS = Counter(
    "memorygraph_redirected_calls",
    "Calls routed with a stale shard map, answered with a redirect to the owner, by method",
    ["method"],
)
SHARDS_OWNED = Gauge(
    "memorygraph_shards_owned", "Shards this worker serves now (workers and pod members)"
)
SHARD_MOVES = Counter(
    "memorygraph_shard_moves",
    "Moves of a shard onto this worker, by outcome (done; failed: refused, or cut short and to "
    "be asked again)",
    ["outcome"],
)
SHARD_MOVE_FENCE = Histogram(
    "memorygraph_shard_move_fence_seconds",
    "How long a move onto this worker paused the graph's writes for its hand-over",
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2, 4),
)
EVENT_LOG_EVENTS = Gauge("memorygraph_event_log_events", "Events retained in the event log")
EVENT_LAST_SEQUENCE = Gauge("memorygraph_event_last_sequence", "Newest event sequence number")
EVENT_SUBSCRIBERS = Gauge("memorygraph_event_subscribers", "Event stream subscribers")
EVENT_FANOUT_LAG = Gauge(
    "memorygraph_event_fanout_lag", "Committed events not yet handed to subscribers"
)
EVENT_SUBSCRIBER_BUFFERED = Gauge(
    "memorygraph_event_subscriber_buffered_max",
    "Events waiting in the fullest subscriber buffer (subscriber lag)",
)
EVENT_SUBSCRIBER_BUFFERED_BYTES = Gauge(
    "memorygraph_event_subscriber_buffered_bytes_max",
    "Bytes of events waiting in the fullest subscriber buffer",
)
STORE_COUNTS = Gauge("memorygraph_store_objects", "Objects in the store, by kind", ["kind"])
ARCHIVED_SESSIONS = Counter(
    "memorygraph_archived_sessions_total", "Sessions removed from the graph once archived"
)
ARCHIVED_BYTES = Counter(
    "memorygraph_archived_bytes_total", "Export bytes of the sessions archived (uncompressed)"
)
ARCHIVE_LAST_SUCCESS = Gauge(
    "memorygraph_archive_last_success_timestamp_seconds", "When a session was last archived"
)
ARCHIVE_REFUSED = Counter(
    "memorygraph_archive_refused_total",
    "ArchiveSession calls that kept the session (changed since export, undelivered reports, ...)",
    ["code"],
)
RESTORED_SESSIONS = Counter(
    "memorygraph_restored_sessions_total", "Sessions written back from an archive"
)
RESTORE_BYTES = Gauge("memorygraph_restore_bytes", "Export bytes held by the restores in flight")
STORE_BYTES = Gauge("memorygraph_store_size_bytes", "Approximate bytes the store occupies")
RPC = RpcStats(
    buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10)
)
REGISTRY.register(RPC)


def observe_rejection(method: str, code: str) -> None:
    RPC_REJECTED.labels(method, code).inc()
    RPC.reject(method, code)


def observe_group_commit(writes: int, seconds: float) -> None:
    COMMIT_GROUP_SIZE.observe(writes)
    COMMIT_SYNC_LATENCY.observe(seconds)


def observe_archived(size: int) -> None:
    ARCHIVED_SESSIONS.inc()
    ARCHIVED_BYTES.inc(size)
    ARCHIVE_LAST_SUCCESS.set_to_current_time()
