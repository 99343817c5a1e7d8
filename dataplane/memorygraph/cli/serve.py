"""`memorygraph serve`: run the data plane in this process (it talks to no other server)."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from memorygraph.cli.options import Commands
from memorygraph.client import Client
from memorygraph.config import load_config, usable_cpus
from memorygraph.store.placement import directory_workers

__all__ = ["add_commands", "cmd_serve"]


def cmd_serve(args: argparse.Namespace, _: Client | None) -> int:
    from memorygraph.server import run_server
    from memorygraph.supervisor import WORKER_ENV, run_supervisor

    overrides = {
        "data_dir": args.data_dir,
        "host": args.host,
        "port": args.port,
        "metrics_port": args.metrics_port,
        "durability": args.durability,
        "shards": args.shards,
        "workers": args.workers,
        "pin_cpus": args.pin_cpus,
        "log_format": args.log_format,
    }
    config = load_config(args.config, overrides)
    if config.workers is None and config.cluster.map_file is None:
        # the directory's own number; the usable CPUs for a new one (a pod member runs one)
        overrides["workers"] = directory_workers(config.data_dir) or usable_cpus()
        config = load_config(args.config, overrides)
    worker = os.environ.get(WORKER_ENV)
    if worker is not None:  # started by the supervisor: one of its workers
        run_server(config, worker=int(worker))
    elif config.worker_count > 1:
        return run_supervisor(config, sys.argv[1:])
    else:
        run_server(config)
    return 0


def add_commands(commands: Commands) -> None:
    serve = commands.add_parser(
        "serve",
        help="run the data plane",
        description="Run the data plane: gRPC on --port (default 50051), metrics and probes "
        "on --metrics-port (default 9090), data in --data-dir (default ./data), "
        "durable writes. Flags override MEMORYGRAPH_* variables, which override "
        "--config. SIGTERM or Ctrl-C stops it gracefully.",
    )
    serve.add_argument("--config", type=Path, help="YAML config file (env MEMORYGRAPH_CONFIG)")
    serve.add_argument("--data-dir", type=Path, help="RocksDB directory (default ./data)")
    serve.add_argument("--host", help="address to bind (default 0.0.0.0)")
    serve.add_argument("--port", type=int, help="gRPC port (default 50051)")
    serve.add_argument("--metrics-port", type=int, help="HTTP metrics/probe port (default 9090)")
    serve.add_argument(
        "--durability",
        choices=["durable", "fast"],
        help="durable: acknowledged once fsynced (default); fast: no fsync",
    )
    serve.add_argument(
        "--shards",
        type=int,
        help="shards the data is split into, a power of two up to 4096, fixed when the data "
        "directory is made (default: the directory's own; 64 for a new one)",
    )
    serve.add_argument(
        "--workers",
        type=int,
        help="worker processes, each serving a share of the shards from a store of its own; "
        "worker i also listens on --port + 1 + i and serves metrics on --metrics-port + 1 + i "
        "(default: the directory's own; for a new one the CPUs this process may use, its "
        "container's CPU limit included; fixed when the data directory is made)",
    )
    serve.add_argument(
        "--pin-cpus",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="keep each server process on one CPU of those it may run on, worker i on the "
        "i-th (RocksDB's flushes and compactions excepted): its threads hand the "
        "interpreter's lock to each other many times a call, cheaper on one CPU; only where "
        "those CPUs are its own (a machine of its own, a pod with whole CPUs of its own), "
        "or processes that each pin themselves crowd onto the same CPUs (default off; env "
        "MEMORYGRAPH_PIN_CPUS)",
    )
    serve.add_argument("--log-format", choices=["text", "json"], help="default text")
    serve.set_defaults(func=cmd_serve, remote=False)
