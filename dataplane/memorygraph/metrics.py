"""Prometheus metrics of the data plane and the HTTP endpoint that serves them with
``/healthz`` (the process is alive) and ``/readyz`` (the store is open and serving)."""

from __future__ import annotations

import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from prometheus_client import CONTENT_TYPE_LATEST, Counter, Gauge, Histogram, generate_latest

__all__ = ["MetricsServer", "observe_group_commit", "observe_rejection", "observe_rpc"]

RPC_REQUESTS = Counter(
    "memorygraph_rpc_requests", "RPCs handled, by method and status code", ["method", "code"]
)
RPC_LATENCY = Histogram(
    "memorygraph_rpc_duration_seconds",
    "RPC handling time, by method",
    ["method"],
    buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)
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
IN_FLIGHT = Gauge("memorygraph_rpc_in_flight", "RPCs being handled now")
OPEN_STREAMS = Gauge("memorygraph_open_streams", "Long-lived streams (events, ingest) open now")
RPC_REJECTED = Counter(
    "memorygraph_rpc_rejected",
    "RPCs refused before any work (authentication, stream cap), by method and code",
    ["method", "code"],
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
STORE_BYTES = Gauge("memorygraph_store_size_bytes", "Approximate bytes the store occupies")


_children: dict[tuple[str, str], tuple[Any, Any]] = {}


def observe_rpc(method: str, code: str, seconds: float) -> None:
    # Label lookups take a lock and build tuples; cache the children per (method, code).
    children = _children.get((method, code))
    if children is None:
        children = _children.setdefault(
            (method, code), (RPC_REQUESTS.labels(method, code), RPC_LATENCY.labels(method))
        )
    children[0].inc()
    children[1].observe(seconds)


def observe_rejection(method: str, code: str) -> None:
    RPC_REJECTED.labels(method, code).inc()
    RPC_REQUESTS.labels(method, code).inc()


def observe_group_commit(writes: int, seconds: float) -> None:
    COMMIT_GROUP_SIZE.observe(writes)
    COMMIT_SYNC_LATENCY.observe(seconds)


class MetricsServer:
    """Serves /metrics, /healthz and /readyz on its own port, in a daemon thread."""

    def __init__(self, host: str, port: int) -> None:
        self.ready = threading.Event()
        self.collect_hook: Any = None
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                path = self.path.split("?", 1)[0]
                if path == "/metrics":
                    if server.collect_hook is not None:
                        server.collect_hook()
                    self._reply(200, generate_latest(), CONTENT_TYPE_LATEST)
                elif path == "/healthz":
                    self._reply(200, b"ok\n")
                elif path == "/readyz":
                    if server.ready.is_set():
                        self._reply(200, b"ready\n")
                    else:
                        self._reply(503, b"not ready: opening the store\n")
                else:
                    self._reply(404, b"not found\n")

            def _reply(self, status: int, body: bytes, ctype: str = "text/plain") -> None:
                self.send_response(status)
                self.send_header("Content-Type", ctype)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: Any) -> None:
                return

        self._http = ThreadingHTTPServer((host, port), Handler)
        self._http.daemon_threads = True
        self.port = self._http.server_address[1]
        self._thread = threading.Thread(
            target=self._http.serve_forever, name="metrics-http", daemon=True
        )

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._http.shutdown()
        self._http.server_close()


def observe_archived(size: int) -> None:
    ARCHIVED_SESSIONS.inc()
    ARCHIVED_BYTES.inc(size)
    ARCHIVE_LAST_SUCCESS.set_to_current_time()
