"""Helpers of the abuse tests: a server's memory read from /proc, health probed meanwhile."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from pathlib import Path

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from memorygraph.v1 import graph_pb2 as pb
from memorygraph.v1.graph_pb2_grpc import MemoryGraphServiceStub

MiB = 1 << 20


def memory(pid: int) -> dict[str, int]:
    """VmRSS and VmHWM (the peak RSS) of process `pid`, in bytes."""
    found = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in ("VmRSS", "VmHWM"):
            found[key] = int(value.split()[0]) * 1024
    return found


def peak_growth(pid: int, work: Callable[[], None]) -> int:
    """How far the RSS of process `pid` rose above where it was, while `work()` ran."""
    start = memory(pid)["VmRSS"]
    peak = [start]
    done = threading.Event()

    def sample() -> None:
        while not done.wait(0.02):
            peak.append(memory(pid)["VmRSS"])

    sampler = threading.Thread(target=sample)
    sampler.start()
    try:
        work()
        time.sleep(0.5)
    finally:
        done.set()
        sampler.join()
    return max(peak) - start


def wait_for(condition: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"{what} within {timeout:g}s")
        time.sleep(0.02)


class Prober:
    """Health checks every `every` seconds on a channel of their own while the block runs, and
    any `sample()` the test wants taken meanwhile. With `rpc`, each check calls the data plane's
    own Health RPC first, and its time counts in the check's."""

    def __init__(
        self,
        address: str,
        sample: Callable[[], None] = lambda: None,
        *,
        every: float = 0.1,
        timeout: float = 5,
        rpc: bool = False,
    ) -> None:
        self.address = address
        self.sample = sample
        self.every = every
        self.timeout = timeout
        self.rpc = rpc
        self.answers: list[float] = []  # seconds each check took
        self.failures: list[str] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run)

    @property
    def slowest(self) -> float:
        return max(self.answers, default=0.0)

    def _run(self) -> None:
        with grpc.insecure_channel(self.address) as channel:
            health = health_pb2_grpc.HealthStub(channel)
            graph = MemoryGraphServiceStub(channel)
            while not self._stop.wait(self.every):
                self.sample()
                started = time.monotonic()
                try:
                    if self.rpc:
                        graph.Health(pb.HealthRequest(), timeout=self.timeout)
                    reply = health.Check(health_pb2.HealthCheckRequest(), timeout=self.timeout)
                except grpc.RpcError as exc:
                    self.failures.append(f"{exc.code()}: {exc.details()}")
                    continue
                if reply.status != health_pb2.HealthCheckResponse.SERVING:
                    self.failures.append(f"health check says {reply.status}")
                self.answers.append(time.monotonic() - started)

    def __enter__(self) -> Prober:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
