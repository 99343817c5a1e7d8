"""Fixtures of the data plane tests: the data plane run for real (in-process, or as a
`memorygraph serve` subprocess on 127.0.0.1 that tests can stop, kill -9 and restart), the
storage engines the store contract runs on, and the services the data plane talks to."""

from __future__ import annotations

import json
import os
import random
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from memorygraph.config import load_config
from memorygraph.server import RunningServer, start_server
from memorygraph.store import KeyValueStore, MemoryStore
from memorygraph.store.placement import load_placement
from memorygraph.store.rocks import RocksStore
from memorygraph.v1 import graph_pb2_grpc

from .archive_support import TOKEN
from .plugin_support import Webhook
from .store_support import Engine
from .vault_server import DataVault

REPO = Path(__file__).resolve().parents[2]


# Ports handed out by this test run: never handed out twice.
_HANDED_OUT: set[int] = set()
_PICK = random.Random()  # not the global one, which hypothesis seeds inside its tests


def _safe_ports() -> range:
    """Ports no outgoing connection of this machine is given: below the kernel's ephemeral
    range (or above it, when little is below). A port the kernel picks from that range for a
    test's server may be taken by some client's connection before the server binds it."""
    try:
        low, high = map(int, Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split())
    except (OSError, ValueError):
        low, high = 32768, 60999
    below, above = range(max(1024, low - 10000), low), range(high + 1, 65536)
    best = max(below, above, key=len)
    if len(best) < 100:
        raise RuntimeError(
            f"the ephemeral port range {low}-{high} leaves too few ports for test servers"
        )
    return best


def _bindable(port: int) -> bool:
    with socket.socket() as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


def free_port() -> int:
    """A port free on 127.0.0.1, outside the ephemeral range, not handed out before."""
    return free_port_run(1)


def wait_serving(
    address: str, timeout: float = 30.0, proc: subprocess.Popen[bytes] | None = None
) -> None:
    """Block until the standard gRPC health check at `address` answers SERVING."""
    deadline = time.monotonic() + timeout
    with grpc.insecure_channel(address) as channel:
        stub = health_pb2_grpc.HealthStub(channel)
        while time.monotonic() < deadline:
            if proc is not None and proc.poll() is not None:
                raise RuntimeError(f"server exited early with code {proc.returncode}")
            try:
                reply = stub.Check(health_pb2.HealthCheckRequest(), timeout=1)
                if reply.status == health_pb2.HealthCheckResponse.SERVING:
                    return
            except grpc.RpcError:
                pass
            time.sleep(0.05)
    raise TimeoutError(f"server at {address} did not become ready in {timeout}s")


def serve_command(data_dir: Path, port: int, metrics_port: int, *extra: str) -> list[str]:
    """`python -m memorygraph serve` on 127.0.0.1 with its data dir and ports (0: any free one),
    as one process unless `extra` says how many workers (the default depends on the machine)."""
    workers = () if any(arg.startswith("--workers") for arg in extra) else ("--workers", "1")
    return [
        sys.executable,
        "-m",
        "memorygraph",
        "serve",
        "--host",
        "127.0.0.1",
        "--data-dir",
        str(data_dir),
        "--port",
        str(port),
        "--metrics-port",
        str(metrics_port),
        *workers,
        *extra,
    ]


def threads_cpus(pid: int) -> dict[str, set[frozenset[int]]]:
    """The CPU sets the threads of process `pid` may run on: RocksDB's background threads
    ("rocksdb"), and all others ("python": the interpreter's, gRPC's)."""
    found: dict[str, set[frozenset[int]]] = {"rocksdb": set(), "python": set()}
    for task in os.listdir(f"/proc/{pid}/task"):
        try:
            name = Path(f"/proc/{pid}/task/{task}/comm").read_text().strip()
            cpus = frozenset(os.sched_getaffinity(int(task)))
        except OSError:
            continue  # it ended meanwhile
        found["rocksdb" if name.startswith("rocksdb:") else "python"].add(cpus)
    return found


class ServerProcess:
    """`python -m memorygraph serve` as a child process on a fixed data dir and ports."""

    def __init__(self, data_dir: Path, *extra: str) -> None:
        self.data_dir = data_dir
        self.port = free_port()
        self.metrics_port = free_port()
        self.extra = extra
        self.proc: subprocess.Popen[bytes] | None = None
        self.log = data_dir.parent / f"server-{self.port}.log"

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def start(self) -> ServerProcess:
        env = {**os.environ, "PYTHONPATH": str(REPO / "dataplane")}
        with self.log.open("ab") as log:
            self.proc = subprocess.Popen(
                serve_command(self.data_dir, self.port, self.metrics_port, *self.extra),
                stdout=log,
                stderr=subprocess.STDOUT,
                env=env,
            )
        wait_serving(self.address, proc=self.proc)
        return self

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 30) -> int:
        assert self.proc is not None
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        code = self.proc.wait(timeout=timeout)
        self.proc = None
        return code

    def kill(self) -> None:
        self.stop(signal.SIGKILL)

    def kill_while_writing(
        self, write: Callable[[], None], writers: int, enough: threading.Event, join: float
    ) -> None:
        """kill -9 the server amid writes: `write` runs on `writers` threads until it fails;
        the kill comes once `enough` is set (within 60 s), then each writer gets `join` s to end."""
        threads = [threading.Thread(target=write) for _ in range(writers)]
        for thread in threads:
            thread.start()
        assert enough.wait(60)
        self.kill()
        for thread in threads:
            thread.join(join)

    def output(self) -> str:
        return self.log.read_text(errors="replace")


@pytest.fixture
def server_process(tmp_path: Path) -> Iterator[ServerProcess]:
    server = ServerProcess(tmp_path / "data").start()
    try:
        yield server
    finally:
        if server.proc is not None:
            server.stop()


@pytest.fixture
def server_address(server_process: ServerProcess) -> str:
    return server_process.address


@pytest.fixture(params=["one", "workers", "pods"], ids=["1-worker", "2-workers", "2-pods"])
def start_inprocess(
    request: pytest.FixtureRequest, tmp_path: Path
) -> Iterator[Callable[..., RunningServer]]:
    """Start an in-process server with config overrides; every one started is stopped.

    Every test runs three times: with one process serving every shard; with two workers of
    one data directory each serving half of them; and with two pod members, each with a volume
    of its own, serving the halves the shard map gives them (`pods_support`). The workers and
    members run in this process, each with its own store, as they would in their own
    processes; the server handed back is then worker (member) 0, called on its client port.
    Tests that read a server's internals (its store, its retention, its reporter) are marked
    `one_process` and run with one only."""
    marker = request.node.get_closest_marker("one_process")
    if request.param != "one" and marker is not None:
        pytest.skip(marker.args[0] if marker.args else "reads the internals of one process")
    started: list[RunningServer] = []

    def start(**overrides: Any) -> RunningServer:
        if request.param == "pods":
            from .pods_support import PodLayout, start_pods

            servers = start_pods(PodLayout(tmp_path / "graph"), **overrides)
            started.extend(servers)
            return WorkerGroup(servers)  # type: ignore[return-value]
        if request.param == "workers":
            servers = start_workers(tmp_path / "data", 2, **overrides)
            started.extend(servers)
            return WorkerGroup(servers)  # type: ignore[return-value]
        settings = {
            "data_dir": tmp_path / "data",
            "host": "127.0.0.1",
            "port": 0,
            "metrics_port": 0,
            **overrides,
        }
        running = start_server(load_config(None, settings, environ={}))
        started.append(running)
        return running

    yield start
    for running in started:
        running.stop(grace=1)


@pytest.fixture
def inprocess_server(start_inprocess: Callable[..., RunningServer]) -> RunningServer:
    return start_inprocess()


def free_port_run(count: int) -> int:
    """A port P with P .. P + count - 1 all free on 127.0.0.1 and never handed out before (a
    data plane of several workers listens on its port and on port + 1 + i for worker i)."""
    ports = _safe_ports()
    for _ in range(200):
        base = _PICK.randrange(ports.start, ports.stop - count + 1)
        run = range(base, base + count)
        if any(port in _HANDED_OUT for port in run) or not all(map(_bindable, run)):
            continue
        _HANDED_OUT.update(run)
        return base
    raise RuntimeError("no run of free ports found")


class WorkerGroup:
    """The workers of one data plane, as a test that starts and stops "the server" sees
    them: worker 0's address and attributes, and `stop` stopping every worker."""

    def __init__(self, servers: list[RunningServer]) -> None:
        self.servers = servers

    def __getattr__(self, name: str) -> Any:
        return getattr(self.servers[0], name)

    def stop(self, grace: float | None = None) -> None:
        for server in self.servers:
            server.stop(grace)


def every_store(server: Any) -> list[Any]:
    """The stores of every worker of a server started by `start_inprocess`."""
    return [each.store for each in getattr(server, "servers", [server])]


def start_workers(data_dir: Path, workers: int, **overrides: Any) -> list[RunningServer]:
    """A data plane of `workers` workers, all in this process (each with its own store, as
    in their own processes), on 127.0.0.1."""
    settings = {
        "data_dir": data_dir,
        "host": "127.0.0.1",
        "metrics_port": 0,
        "workers": workers,
        **overrides,
        "port": free_port_run(workers + 1),
    }
    config = load_config(None, settings, environ={})
    load_placement(config.data_dir, shards=config.shards, workers=workers)
    return [start_server(config, worker) for worker in range(workers)]


@pytest.fixture
def stub(inprocess_server: RunningServer) -> Iterator[graph_pb2_grpc.MemoryGraphServiceStub]:
    with grpc.insecure_channel(f"127.0.0.1:{inprocess_server.port}") as channel:
        yield graph_pb2_grpc.MemoryGraphServiceStub(channel)


def _engine(name: str, path: Path) -> Engine:
    if name == "rocks":
        return Engine(name, lambda: RocksStore(path / "db"), persistent=True)
    return Engine(name, MemoryStore, persistent=False)


@pytest.fixture(params=["memory", "rocks"])
def engine(request: pytest.FixtureRequest, tmp_path: Path) -> Engine:
    return _engine(request.param, tmp_path)


@pytest.fixture
def kv(engine: Engine) -> Iterator[KeyValueStore]:
    store = engine.open()
    yield store
    store.close()


@pytest.fixture
def vault(tmp_path: Path) -> Iterator[DataVault]:
    server = DataVault(tmp_path / "vault", token=TOKEN).start()
    yield server
    server.stop()


@pytest.fixture
def webhook() -> Iterator[Webhook]:
    state = Webhook()

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_POST(self) -> None:
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            state.calls.append(body)
            state.headers.append(dict(self.headers))
            if state.delay:
                time.sleep(state.delay)
            status, answer = state.answer(body)
            raw = json.dumps(answer).encode() if not isinstance(answer, bytes) else answer
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(raw)))
            self.end_headers()
            self.wfile.write(raw)

        def log_message(self, format: str, *args: Any) -> None:
            return

    state.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    state.server.daemon_threads = True
    thread = threading.Thread(target=state.server.serve_forever, daemon=True)
    thread.start()
    yield state
    state.server.shutdown()
    state.server.server_close()
