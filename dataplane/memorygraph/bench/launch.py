"""Starting the servers under test (`memorygraph.bench.targets`) as child processes, each on a
free local port, and stopping them.

A server is handed to the workloads as a `Target` once it has said it is ready and its port
answers; what runs inside the child process lives in `targets`, not here.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import grpc

from memorygraph.bench.workloads import STREAM_BATCH, STREAM_NODES, Target

__all__ = ["free_port", "server"]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def free_port_run(count: int) -> int:
    """A free port whose next `count - 1` are free too (the workers' own ports)."""
    for _ in range(100):
        base = free_port()
        try:
            with contextlib.ExitStack() as held:
                for port in range(base, base + count):
                    held.enter_context(socket.socket()).bind(("127.0.0.1", port))
        except OSError:
            continue
        return base
    raise RuntimeError("no run of free ports")


@contextmanager
def server(
    kind: str, scratch: Path, *extra: str, workers: int = 1, pin_cpus: bool = False
) -> Iterator[Target]:
    """A server of `kind` (see `targets`) on a free port until the context ends; with
    `pin_cpus`, kept on one CPU (each worker on its own) as `serve --pin-cpus` keeps them."""
    port = free_port() if workers == 1 else free_port_run(workers + 1)
    args = [
        sys.executable,
        "-m",
        "memorygraph.bench.targets",
        kind,
        "--port",
        str(port),
        "--stream-batches",
        str(STREAM_NODES // STREAM_BATCH),
        "--batch-size",
        str(STREAM_BATCH),
        *extra,
    ]
    if workers > 1:
        args += ["--workers", str(workers)]
    if pin_cpus:
        args.append("--pin-cpus")
    data_dir = scratch / f"data-{port}" if kind == "memorygraph" else None
    if data_dir is not None:
        args += ["--data-dir", str(data_dir)]
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])}
    proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, env=env)
    try:
        assert proc.stdout is not None
        if proc.stdout.readline().strip() != b"ready":
            raise RuntimeError(f"{kind} server failed to start")
        with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
            grpc.channel_ready_future(channel).result(timeout=30)
        yield Target(kind, f"127.0.0.1:{port}", data_dir)
    finally:
        proc.terminate()
        proc.wait(30)
        if data_dir is not None:  # a run's stores take hundreds of MiB; the next run makes its own
            shutil.rmtree(data_dir, ignore_errors=True)
