"""Counts and timings kept per thread without locks and summed when Prometheus scrapes.

`ThreadCounts` counts by key; `CallStats` counts calls by their label values and times them, and
is itself a Prometheus collector; `RpcStats` is the `memorygraph_rpc_*` one. The hot path (an RPC,
a plugin run) only writes to its own thread's cell. This module defines no metric instances and
registers nothing: the metrics themselves are in `metrics.definitions`, and plugin metrics with
the plugins.
"""

from __future__ import annotations

import math
import threading
from bisect import bisect_left
from collections.abc import Callable, Iterable, Iterator
from typing import Any, Generic, TypeVar

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily
from prometheus_client.registry import Collector

__all__ = ["CallStats", "RpcStats", "ThreadCounts"]

T = TypeVar("T")


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
