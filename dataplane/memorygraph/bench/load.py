"""The load generator: N calls in flight for a fixed time, latencies recorded after a warm-up.

Runs in the benchmark's own process with grpc.aio, so the servers under test (child
processes) get the other core and both sides are driven identically.
"""

from __future__ import annotations

import asyncio
import statistics
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

__all__ = ["Result", "drive"]


@dataclass
class Result:
    ops: int
    seconds: float
    latencies: list[float] = field(repr=False, default_factory=list)
    # The cores other processes used meanwhile (`bench.quiet`): 0 on a quiet machine.
    others: float = 0.0

    @property
    def throughput(self) -> float:
        return self.ops / self.seconds if self.seconds else 0.0

    def percentile(self, q: float) -> float:
        if not self.latencies:
            return float("nan")
        ordered = sorted(self.latencies)
        return ordered[min(len(ordered) - 1, int(q * len(ordered)))]

    @property
    def p50(self) -> float:
        return statistics.median(self.latencies) if self.latencies else float("nan")

    @classmethod
    def pooled(cls, slices: list[Result]) -> Result:
        """One result of a scenario measured in several slices: their calls, time and
        latencies together, and the busiest slice's `others` (a slice measured on a busy
        machine marks the whole)."""
        return cls(
            sum(part.ops for part in slices),
            sum(part.seconds for part in slices),
            [latency for part in slices for latency in part.latencies],
            max((part.others for part in slices), default=0.0),
        )


async def drive(
    call: Callable[[int], Awaitable[object]],
    *,
    concurrency: int,
    duration: float,
    warmup: float,
    units_per_call: int = 1,
    clock: Callable[[], float] = time.perf_counter,
) -> Result:
    """Keep `concurrency` calls in flight for warmup + duration seconds; count the calls that
    end in the last `duration` seconds (those that straddle its start or end as well would
    leave a call's worth of time uncounted per window, more in short slices)."""
    start = clock()
    measure_from = start + warmup
    stop_at = measure_from + duration
    latencies: list[float] = []
    ops = 0

    async def worker(index: int) -> None:
        nonlocal ops
        while True:
            began = clock()
            if began >= stop_at:
                return
            await call(index)
            ended = clock()
            if measure_from <= ended <= stop_at:
                latencies.append(ended - began)
                ops += units_per_call

    await asyncio.gather(*(worker(i) for i in range(concurrency)))
    return Result(ops, duration, latencies)
