"""`memorygraph serve --workers W` with W > 1: one process per worker, started, watched and
restarted here.

The supervisor makes the data directory's placement of shards (`store.placement`) before any
worker starts, then runs each worker as `memorygraph serve` again, with the same arguments and
`MEMORYGRAPH_WORKER=<i>` in its environment. A worker that exits while the supervisor is not
stopping is started again (after a short pause, longer when it keeps failing); what it had
acknowledged is in its store, and what its writes had still to deliver to other workers is in
its outbox. The supervisor's own HTTP port answers `/healthz` and `/readyz` (ready while every
worker answers its health check); each worker serves its metrics on `metrics_port + 1 + i`.
SIGTERM or Ctrl-C stops the workers gracefully, then the supervisor.
"""

from __future__ import annotations

import ctypes
import logging
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Sequence
from typing import Any

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from memorygraph.auth import OwnKey
from memorygraph.config import ServerConfig
from memorygraph.errors import ConfigError
from memorygraph.logs import setup_logging
from memorygraph.metrics.endpoint import MetricsServer
from memorygraph.server import wait_for_stop_signal
from memorygraph.store.placement import load_placement
from memorygraph.topology import internal_address

__all__ = ["WORKER_ENV", "Supervisor", "run_supervisor"]

log = logging.getLogger("memorygraph.server")

WORKER_ENV = "MEMORYGRAPH_WORKER"
EXIT_CONFIG = 2  # what `memorygraph serve` exits with on settings it cannot use
_RESTART_PAUSE = 0.5  # seconds before a worker that exited is started again; doubled while it
_RESTART_PAUSE_MAX = 10.0  # keeps exiting within a minute, up to this
_WATCH_SECONDS = 0.2


def _die_with_parent() -> None:
    """In the child before exec: end with SIGTERM should the supervisor die (Linux)."""
    libc = ctypes.CDLL(None, use_errno=True)
    pr_set_pdeathsig = 1
    libc.prctl(pr_set_pdeathsig, signal.SIGTERM)


class Supervisor:
    def __init__(self, config: ServerConfig, argv: Sequence[str]) -> None:
        self.config = config
        self.argv = list(argv)
        self.children: list[subprocess.Popen[bytes] | None] = [None] * config.worker_count
        self.restarts = [0] * config.worker_count
        self._pause = [_RESTART_PAUSE] * config.worker_count
        self._started = [0.0] * config.worker_count
        self._stopping = threading.Event()
        self.failed = False  # a worker refused its settings: the supervisor exits 2
        self._watcher = threading.Thread(target=self._watch, name="supervisor", daemon=True)
        self.metrics = MetricsServer(config.host, config.metrics_port)
        self._key = OwnKey(config.auth.api_keys_file if config.auth.enabled else None)

    def _spawn(self, worker: int) -> None:
        env = {**os.environ, WORKER_ENV: str(worker)}
        self.children[worker] = subprocess.Popen(
            [sys.executable, "-m", "memorygraph", *self.argv],
            env=env,
            preexec_fn=_die_with_parent if sys.platform == "linux" else None,
        )
        self._started[worker] = time.monotonic()
        log.info("worker %d started (pid %d)", worker, self.children[worker].pid)  # type: ignore[union-attr]

    def start(self) -> None:
        load_placement(
            self.config.data_dir, shards=self.config.shards, workers=self.config.worker_count
        )
        _refuse_a_taken_port(self.config)
        self.metrics.start()
        self.metrics.alive.set()
        for worker in range(self.config.worker_count):
            self._spawn(worker)
        self._watcher.start()

    def _watch(self) -> None:
        while not self._stopping.wait(_WATCH_SECONDS):
            for worker, child in enumerate(self.children):
                if child is None or child.poll() is None:
                    continue
                if self._stopping.is_set():
                    return
                ran = time.monotonic() - self._started[worker]
                if child.returncode == EXIT_CONFIG:
                    log.error(
                        "worker %d cannot start with these settings (see its message); stopping",
                        worker,
                    )
                    self.failed = True
                    os.kill(os.getpid(), signal.SIGTERM)  # the main thread stops the others
                    return
                log.error(
                    "worker %d exited with code %s after %.1fs; starting it again",
                    worker,
                    child.returncode,
                    ran,
                )
                self.metrics.ready.clear()
                pause = self._pause[worker] if ran < 60 else _RESTART_PAUSE
                self._pause[worker] = min(pause * 2, _RESTART_PAUSE_MAX)
                if self._stopping.wait(pause):
                    return
                self.restarts[worker] += 1
                self._spawn(worker)
            if self.serving():
                self.metrics.ready.set()
            else:
                self.metrics.ready.clear()

    def serving(self) -> bool:
        """Whether every worker answers its health check as serving."""
        for worker in range(self.config.worker_count):
            address = internal_address(self.config, worker)
            try:
                with grpc.insecure_channel(address) as channel:
                    stub: Any = health_pb2_grpc.HealthStub(channel)
                    reply = stub.Check(
                        health_pb2.HealthCheckRequest(), timeout=1, metadata=self._key.metadata()
                    )
            except grpc.RpcError:
                return False
            if reply.status != health_pb2.HealthCheckResponse.SERVING:
                return False
        return True

    def stop(self) -> None:
        self._stopping.set()
        self.metrics.ready.clear()
        for child in self.children:
            if child is not None and child.poll() is None:
                child.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + self.config.shutdown_grace_seconds + 10
        for worker, child in enumerate(self.children):
            if child is None:
                continue
            try:
                child.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                log.error("worker %d did not stop in time; killing it", worker)
                child.kill()
                child.wait()
        if self._watcher.is_alive():
            self._watcher.join()
        self.metrics.stop()
        log.info("stopped %d workers", self.config.worker_count)


def _refuse_a_taken_port(config: ServerConfig) -> None:
    """The workers share their port with each other (SO_REUSEPORT), and would share it as
    silently with any other server already on it: refused instead."""
    host = "127.0.0.1" if config.host in ("0.0.0.0", "::", "") else config.host
    for port in range(config.port, config.port + 1 + config.worker_count):
        with socket.socket() as probe:
            probe.settimeout(0.5)
            if probe.connect_ex((host, port)) == 0:
                raise ConfigError(f"cannot listen on {host}:{port}: a server answers there already")


def run_supervisor(config: ServerConfig, argv: Sequence[str]) -> int:
    """Run the workers until SIGTERM or SIGINT, then stop them gracefully; the exit code (2
    when a worker refused its settings)."""
    setup_logging(config.log_level, config.log_format)
    supervisor = Supervisor(config, argv)
    supervisor.start()
    log.info(
        "serving gRPC with %d workers on %s:%d (worker i also on port %d + i), data in %s",
        config.worker_count,
        config.host,
        config.port,
        config.port + 1,
        config.data_dir,
    )
    received = wait_for_stop_signal()
    if not supervisor.failed:
        log.info("received %s, stopping the workers", received.name)
    supervisor.stop()
    return EXIT_CONFIG if supervisor.failed else 0
