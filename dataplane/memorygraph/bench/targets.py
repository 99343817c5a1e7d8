"""Servers under test, each run in its own process: `python -m memorygraph.bench.targets KIND`.

`echo` is the baseline: the same generated servicer, the same grpcio server flavour, threads
and settings as `memorygraph serve` (unary reads on a few threads with spares, every other call
on a pool of its own; see `servicers.pools`), answering every call with a canned message of the
shape the real server returns, and doing nothing else. With `--work-us N` its AddPrompt first
spends N microseconds of CPU in Python: a reference for what a handler's own work costs in this
server flavour, apart from anything MemoryGraph does. With `--sync-dir DIR` its AddPrompt first
appends the request to a log file in DIR and waits for `fdatasync`: the least any server that
answers only once a write is on stable storage can add to a call on this machine's disk, when
each write makes the file longer. With `--sync-reuse-mb N` as well, it writes over a file of N
MiB written out at start: what the sync costs when the file system has no new blocks or size to
record, as in a write-ahead log file reused.
"""

from __future__ import annotations

import argparse
import functools
import os
import threading
import time
from collections.abc import Iterator
from concurrent import futures
from pathlib import Path
from typing import Any, cast

import grpc

from memorygraph.affinity import pin_to_one_cpu
from memorygraph.bench.workloads import CONTENT, MODEL
from memorygraph.config import ServerConfig, load_config
from memorygraph.model import format_id, new_id
from memorygraph.server import start_server, wait_for_stop_signal
from memorygraph.servicers.handlers import READS
from memorygraph.servicers.pools import ElasticPool
from memorygraph.supervisor import Supervisor
from memorygraph.v1 import graph_pb2 as pb
from memorygraph.v1 import graph_pb2_grpc as pb_grpc

__all__ = ["EchoServicer", "SyncedLog", "canned_node", "echo_server"]


def canned_node(content: str = CONTENT) -> pb.Node:
    """A prompt node as MemoryGraph returns it, for the echo server to answer with: by
    default, one like those the scenarios write."""
    node = pb.Node(
        id=format_id(new_id()),
        kind=pb.NODE_KIND_PROMPT,
        session_id=format_id(new_id()),
        content=content,
        prompt=pb.PromptDetails(model=MODEL),
    )
    node.create_time.GetCurrentTime()
    node.update_time.CopyFrom(node.create_time)
    return node


def spend_cpu(seconds: float) -> None:
    """Run Python bytecode until this thread has used `seconds` of CPU time (holding the GIL
    as handler code does, not sleeping)."""
    until = time.thread_time() + seconds
    while time.thread_time() < until:
        sum(range(100))


class SyncedLog:
    """A file each record is synced to before `append` returns (the GIL is free while the
    write and the sync run): appended to, or with `reuse_bytes`, written over from the start
    of a file of that size written out beforehand, again from the start once full (a log file
    reused, as a store in service writes its write-ahead log)."""

    def __init__(self, path: Path, reuse_bytes: int = 0) -> None:
        self.path = path
        self.reuse_bytes = reuse_bytes
        self.offset = 0
        self._placing = threading.Lock()  # concurrent appends take distinct places
        if not reuse_bytes:
            self.fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
            return
        self.fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        chunk = bytes(1 << 20)
        for start in range(0, reuse_bytes, len(chunk)):
            os.write(self.fd, chunk[: reuse_bytes - start])
        os.fsync(self.fd)

    def append(self, record: bytes) -> None:
        if not self.reuse_bytes:
            os.write(self.fd, record)
        else:
            with self._placing:
                if self.offset + len(record) > self.reuse_bytes:
                    self.offset = 0
                at = self.offset
                self.offset += len(record)
            os.pwrite(self.fd, record, at)
        os.fdatasync(self.fd)

    def close(self) -> None:
        os.close(self.fd)


class EchoServicer(pb_grpc.MemoryGraphServiceServicer):
    def __init__(
        self,
        stream_batches: int,
        batch_size: int,
        work_seconds: float = 0.0,
        log: SyncedLog | None = None,
    ) -> None:
        self.node = canned_node()
        self.batch = pb.QueryBatch(nodes=[self.node] * batch_size)
        self.stream_batches = stream_batches
        self.work_seconds = work_seconds
        self.log = log

    def AddPrompt(self, request: pb.AddPromptRequest, context: grpc.ServicerContext) -> pb.Node:
        if self.work_seconds:
            spend_cpu(self.work_seconds)
        if self.log is not None:
            self.log.append(request.SerializeToString())
        return self.node

    def AddResponse(self, request: pb.AddResponseRequest, context: grpc.ServicerContext) -> pb.Node:
        return self.node

    def GetNode(self, request: pb.GetNodeRequest, context: grpc.ServicerContext) -> pb.Node:
        return self.node

    def CreateSession(
        self, request: pb.CreateSessionRequest, context: grpc.ServicerContext
    ) -> pb.Session:
        return pb.Session(id=self.node.session_id)

    def StreamQuery(
        self, request: pb.StreamQueryRequest, context: grpc.ServicerContext
    ) -> Iterator[pb.QueryBatch]:
        for _ in range(self.stream_batches):
            yield self.batch


def _all_but_reads_on(pool: futures.ThreadPoolExecutor, servicer: EchoServicer) -> None:
    """Have gRPC run every method of the servicer but the unary reads on `pool` (its
    experimental per-method pools), as `memorygraph serve` runs its writes and streams."""
    for name in dir(pb_grpc.MemoryGraphServiceServicer):
        if name.startswith("_") or name in READS:
            continue
        method = functools.partial(getattr(type(servicer), name), servicer)
        method.experimental_thread_pool = pool  # type: ignore[attr-defined]
        setattr(servicer, name, method)


def echo_server(
    port: int,
    servicer: EchoServicer,
    *,
    max_workers: int,
    core_workers: int,
    max_concurrent_rpcs: int,
) -> tuple[grpc.Server, tuple[futures.Executor, ...]]:
    """The echo's gRPC server on 127.0.0.1:`port`, not started, and its thread pools (to shut
    down after it): unary reads on `core_workers` threads with spares, every other call on a
    pool of `max_workers`, as `memorygraph serve` runs them."""
    reads = ElasticPool(core_workers, max_workers, name="echo-read")
    waiting = futures.ThreadPoolExecutor(max_workers=max_workers, thread_name_prefix="echo-waiting")
    server = grpc.server(
        cast(futures.ThreadPoolExecutor, reads), maximum_concurrent_rpcs=max_concurrent_rpcs
    )
    _all_but_reads_on(waiting, servicer)
    pb_grpc.add_MemoryGraphServiceServicer_to_server(servicer, server)
    server.add_insecure_port(f"127.0.0.1:{port}")
    return server, (reads, waiting)


def run_echo(
    port: int,
    max_workers: int,
    core_workers: int,
    max_concurrent_rpcs: int,
    stream_batches: int,
    batch_size: int,
    work_seconds: float = 0.0,
    sync_dir: Path | None = None,
    sync_reuse_bytes: int = 0,
) -> None:
    log = None
    if sync_dir is not None:
        log = SyncedLog(sync_dir / f"echo-{port}.log", sync_reuse_bytes)
    server, pools = echo_server(
        port,
        EchoServicer(stream_batches, batch_size, work_seconds, log),
        max_workers=max_workers,
        core_workers=core_workers,
        max_concurrent_rpcs=max_concurrent_rpcs,
    )
    server.start()
    _wait_for_signal()
    server.stop(1).wait()
    for pool in pools:
        pool.shutdown(wait=False)
    if log is not None:
        log.close()
        log.path.unlink(missing_ok=True)


def _config(port: int, data_dir: Path, durability: str, **settings: Any) -> ServerConfig:
    """The settings of a data plane under test: on 127.0.0.1, no metrics port to collide."""
    return load_config(
        None,
        {
            "data_dir": data_dir,
            "host": "127.0.0.1",
            "port": port,
            "metrics_port": 0,
            "durability": durability,
            **settings,
        },
        environ={k: v for k, v in os.environ.items() if k.startswith("MEMORYGRAPH_")},
    )


def run_memorygraph(
    port: int,
    data_dir: Path,
    durability: str,
    plugins_file: Path | None = None,
    shards: int | None = None,
    pin_cpus: bool = False,
) -> None:
    config = _config(
        port, data_dir, durability, plugins_file=plugins_file, shards=shards, pin_cpus=pin_cpus
    )
    running = start_server(config)
    _wait_for_signal()
    running.stop(grace=1)


def run_workers(
    port: int, data_dir: Path, durability: str, workers: int, pin_cpus: bool = False
) -> None:
    """`memorygraph serve --workers` as it runs: a supervisor and its worker processes (each
    started with the same settings, as command-line flags)."""
    config = _config(port, data_dir, durability, workers=workers, pin_cpus=pin_cpus)
    argv = ["serve", "--data-dir", str(data_dir), "--host", "127.0.0.1", "--port", str(port)]
    argv += ["--metrics-port", "0", "--durability", durability, "--workers", str(workers)]
    # Said either way: the workers read MEMORYGRAPH_* variables the benchmark may have.
    argv.append("--pin-cpus" if pin_cpus else "--no-pin-cpus")
    supervisor = Supervisor(config, argv)
    supervisor.start()
    while not supervisor.serving():
        time.sleep(0.1)
    _wait_for_signal()
    supervisor.stop()


def _wait_for_signal() -> None:
    """Tell the benchmark (reading stdout) that the server is up, then serve until stopped."""
    wait_for_stop_signal(on_ready=lambda: print("ready", flush=True))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("kind", choices=["memorygraph", "echo"])
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--data-dir", type=Path, help="memorygraph: the store's directory")
    parser.add_argument("--durability", default="durable")
    parser.add_argument("--plugins-file", type=Path)
    parser.add_argument("--shards", type=int, help="memorygraph: shards of a new data directory")
    parser.add_argument("--workers", type=int, default=1, help="memorygraph: worker processes")
    parser.add_argument(
        "--pin-cpus",
        action="store_true",
        help="keep the server on one CPU (each worker on its own), as `serve --pin-cpus`",
    )
    parser.add_argument("--stream-batches", type=int, default=10)
    parser.add_argument("--batch-size", type=int, default=1000)
    parser.add_argument(
        "--work-us", type=float, default=0.0, help="echo: CPU microseconds spent per AddPrompt"
    )
    parser.add_argument(
        "--sync-dir",
        type=Path,
        help="echo: append each AddPrompt request to a log file here and fdatasync it first",
    )
    parser.add_argument(
        "--sync-reuse-mb",
        type=int,
        default=0,
        help="echo with --sync-dir: write over a log file of this many MiB written out at "
        "start, instead of appending",
    )
    args = parser.parse_args()
    defaults = load_config(None, {}, environ={})
    if args.kind == "echo":
        if args.pin_cpus:
            pin_to_one_cpu()
        run_echo(
            args.port,
            defaults.max_workers,
            defaults.core_workers,
            defaults.max_concurrent_rpcs,
            args.stream_batches,
            args.batch_size,
            args.work_us / 1e6,
            args.sync_dir,
            args.sync_reuse_mb << 20,
        )
    elif args.workers > 1:
        run_workers(args.port, args.data_dir, args.durability, args.workers, args.pin_cpus)
    else:
        run_memorygraph(
            args.port,
            args.data_dir,
            args.durability,
            args.plugins_file,
            args.shards,
            args.pin_cpus,
        )


if __name__ == "__main__":
    main()
