"""The per-RPC metrics: counted per thread without locks, exact once summed at scrape time."""

from __future__ import annotations

import threading

import pytest
from memorygraph.metrics.per_thread import RpcStats, ThreadCounts
from prometheus_client import CollectorRegistry, generate_latest

BUCKETS = (0.001, 0.01, 0.1)


def _scrape(stats: RpcStats) -> dict[str, float]:
    registry = CollectorRegistry()
    registry.register(stats)
    samples: dict[str, float] = {}
    for line in generate_latest(registry).decode().splitlines():
        if not line.startswith("#"):
            name, value = line.rsplit(" ", 1)
            samples[name] = float(value)
    return samples


def _in_threads(count: int, work: object) -> None:
    threads = [threading.Thread(target=work) for _ in range(count)]  # type: ignore[arg-type]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()


def test_calls_from_many_threads_add_up_exactly() -> None:
    stats = RpcStats(BUCKETS)

    def calls() -> None:
        for i in range(2000):
            stats.begin()
            stats.end("GetNode", "OK" if i % 4 else "NOT_FOUND", 0.005)

    _in_threads(8, calls)  # threads that have ended keep their counts
    samples = _scrape(stats)
    assert samples['memorygraph_rpc_requests_total{code="OK",method="GetNode"}'] == 12_000
    assert samples['memorygraph_rpc_requests_total{code="NOT_FOUND",method="GetNode"}'] == 4000
    assert samples['memorygraph_rpc_duration_seconds_count{method="GetNode"}'] == 16_000
    assert samples['memorygraph_rpc_duration_seconds_sum{method="GetNode"}'] == pytest.approx(80.0)
    assert samples["memorygraph_rpc_in_flight"] == 0


def test_latency_buckets_are_cumulative_and_inclusive() -> None:
    stats = RpcStats(BUCKETS)
    for seconds in (0.001, 0.002, 0.05, 3.0):  # 0.001 belongs to le="0.001"
        stats.begin()
        stats.end("AddPrompt", "OK", seconds)
    samples = _scrape(stats)
    bucket = 'memorygraph_rpc_duration_seconds_bucket{le="%s",method="AddPrompt"}'
    assert [samples[bucket % le] for le in ("0.001", "0.01", "0.1", "+Inf")] == [1, 2, 3, 4]


def test_in_flight_counts_calls_begun_and_not_ended() -> None:
    stats = RpcStats(BUCKETS)
    started, release = threading.Barrier(4), threading.Event()

    def slow_call() -> None:
        stats.begin()
        started.wait()
        release.wait()
        stats.end("StreamQuery", "OK", 0.5)

    threads = [threading.Thread(target=slow_call) for _ in range(3)]
    for thread in threads:
        thread.start()
    started.wait()
    assert _scrape(stats)["memorygraph_rpc_in_flight"] == 3
    release.set()
    for thread in threads:
        thread.join()
    assert _scrape(stats)["memorygraph_rpc_in_flight"] == 0


def test_refused_calls_are_requests_without_a_latency() -> None:
    stats = RpcStats(BUCKETS)
    stats.reject("Ingest", "RESOURCE_EXHAUSTED")
    samples = _scrape(stats)
    assert samples['memorygraph_rpc_requests_total{code="RESOURCE_EXHAUSTED",method="Ingest"}'] == 1
    assert not any(name.startswith("memorygraph_rpc_duration") for name in samples)


def test_thread_counts_sum_every_thread() -> None:
    counts = ThreadCounts()

    def add() -> None:
        for _ in range(1000):
            counts.add("GetNode")
        counts.add("AddPrompt")

    _in_threads(6, add)
    assert counts.totals() == {"GetNode": 6000, "AddPrompt": 6}
