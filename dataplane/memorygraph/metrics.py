"""Prometheus metrics of the data plane and the HTTP endpoint that serves them with
``/healthz`` (the process is alive) and ``/readyz`` (the store is open and serving)."""

from __future__ import annotations

import math
import threading
from bisect import bisect_left
from collections.abc import Callable, Iterable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Generic, TypeVar

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily
from prometheus_client.registry import Collector

__all__ = [
    "RPC",
    "CallStats",
    "MetricsServer",
    "RpcStats",
    "ThreadCounts",
    "observe_group_commit",
    "observe_rejection",
]

T = TypeVar("T")

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


class _PerThread(Generic[T]):
    """One cell per thread, made on first use and kept for the life of the process.

    Counting on every RPC through prometheus_client takes a lock per update, and under many
    concurrent calls those locks cost more than the counting. Here each thread writes only its
    own cell (under the GIL one store is atomic, so no lock), and a reader sums all cells,
    copying each one's contents in a single step. A thread that ends leaves its cell behind, so
    totals never go down.
    """

    def __init__(self, make: Callable[[], T]) -> None:
        self._make = make
        self._local = threading.local()
        self._cells: list[T] = []
        self._lock = threading.Lock()  # taken once per thread, to register its cell

    def mine(self) -> T:
        try:
            cell: T = self._local.cell
        except AttributeError:
            cell = self._local.cell = self._make()
            with self._lock:
                self._cells.append(cell)
        return cell

    def cells(self) -> list[T]:
        with self._lock:
            return list(self._cells)


class ThreadCounts:
    """Counts by key, added to from many threads without a lock (see `_PerThread`)."""

    def __init__(self) -> None:
        self._cells: _PerThread[dict[str, int]] = _PerThread(dict)

    def add(self, key: str) -> None:
        cell = self._cells.mine()
        cell[key] = cell.get(key, 0) + 1

    def totals(self) -> dict[str, int]:
        totals: dict[str, int] = {}
        for cell in self._cells.cells():
            for key, count in list(cell.items()):
                totals[key] = totals.get(key, 0) + count
        return totals


class _Cell:
    __slots__ = ("finished", "series", "started")

    def __init__(self) -> None:
        self.started = 0
        self.finished = 0
        # label values -> [calls, time sum, one count per bucket, then the overflow]
        self.series: dict[tuple[str, ...], list[float]] = {}


K = TypeVar("K")


def _summed(entries: Iterable[tuple[K, list[float]]]) -> dict[K, list[float]]:
    """The series of each key added up element by element."""
    totals: dict[K, list[float]] = {}
    for key, series in entries:
        total = totals.setdefault(key, [0.0] * len(series))
        for i, value in enumerate(series):
            total[i] += value
    return totals


class CallStats(Collector):
    """Calls counted by their label values and timed by all of them but the last (the call's
    outcome), kept per thread (see `_PerThread`) and exported on scrape as the counter
    `counter` and the histogram `histogram`."""

    def __init__(
        self,
        *,
        counter: tuple[str, str],
        histogram: tuple[str, str],
        labels: tuple[str, ...],
        buckets: tuple[float, ...],
    ) -> None:
        """`counter` and `histogram` are (name, help) pairs."""
        self.counter, self.histogram = counter, histogram
        self.labels = labels
        self.buckets = buckets
        self._cells: _PerThread[_Cell] = _PerThread(_Cell)

    def timed(self, key: tuple[str, ...], seconds: float) -> None:
        """A call with these label values, which took `seconds`."""
        self._time(self._cells.mine(), key, seconds)

    def counted(self, key: tuple[str, ...]) -> None:
        """A call with these label values that was not timed (refused, dropped)."""
        self._series(self._cells.mine(), key)[0] += 1

    def _time(self, cell: _Cell, key: tuple[str, ...], seconds: float) -> None:
        series = self._series(cell, key)
        series[0] += 1
        series[1] += seconds
        series[2 + bisect_left(self.buckets, seconds)] += 1

    def _series(self, cell: _Cell, key: tuple[str, ...]) -> list[float]:
        series = cell.series.get(key)
        if series is None:
            series = cell.series[key] = [0, 0.0] + [0] * (len(self.buckets) + 1)
        return series

    def _families(self, cells: list[_Cell]) -> Iterator[Any]:
        # Each cell's series copied in one step: its thread may be adding to it meanwhile.
        by_key = sorted(
            _summed(
                (key, list(series)) for cell in cells for key, series in list(cell.series.items())
            ).items()
        )
        calls = CounterMetricFamily(*self.counter, labels=list(self.labels))
        for key, series in by_key:
            calls.add_metric([str(value) for value in key], series[0])
        timed = _summed((key[:-1], series) for key, series in by_key)
        durations = HistogramMetricFamily(*self.histogram, labels=list(self.labels[:-1]))
        for key, series in timed.items():
            if not any(series[2:]):
                continue  # untimed calls only
            cumulative, buckets = 0.0, []
            for bound, count in zip((*self.buckets, math.inf), series[2:], strict=True):
                cumulative += count
                buckets.append(("+Inf" if bound == math.inf else repr(float(bound)), cumulative))
            durations.add_metric([str(value) for value in key], buckets, sum_value=series[1])
        yield calls
        yield durations

    def collect(self) -> Iterator[Any]:
        return self._families(self._cells.cells())


class RpcStats(CallStats):
    """Requests by method and code, handling time by method and calls in flight: the
    `memorygraph_rpc_*` metrics."""

    def __init__(self, buckets: tuple[float, ...]) -> None:
        super().__init__(
            counter=("memorygraph_rpc_requests", "RPCs handled, by method and status code"),
            histogram=("memorygraph_rpc_duration_seconds", "RPC handling time, by method"),
            labels=("method", "code"),
            buckets=buckets,
        )

    def begin(self) -> None:
        self._cells.mine().started += 1

    def end(self, method: str, code: str, seconds: float) -> None:
        """A call that `begin` counted has ended, after `seconds`, with status `code`."""
        cell = self._cells.mine()
        cell.finished += 1
        self._time(cell, (method, code), seconds)

    def reject(self, method: str, code: str) -> None:
        """A call refused before any work: counted as a request, not timed."""
        self.counted((method, code))

    def collect(self) -> Iterator[Any]:
        cells = self._cells.cells()
        in_flight = sum(cell.started - cell.finished for cell in cells)
        yield from self._families(cells)
        yield GaugeMetricFamily(
            "memorygraph_rpc_in_flight", "RPCs being handled now", value=max(0, in_flight)
        )


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
