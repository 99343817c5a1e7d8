"""`memorygraph serve`: run the data plane in this process (it talks to no other server)."""

from __future__ import annotations

import argparse
from pathlib import Path

from memorygraph.cli.options import Commands
from memorygraph.client import Client
from memorygraph.config import load_config

__all__ = ["add_commands", "cmd_serve"]


def cmd_serve(args: argparse.Namespace, _: Client | None) -> int:
    from memorygraph.server import run_server

    overrides = {
        "data_dir": args.data_dir,
        "host": args.host,
        "port": args.port,
        "metrics_port": args.metrics_port,
        "durability": args.durability,
        "shards": args.shards,
        "log_format": args.log_format,
    }
    run_server(load_config(args.config, overrides))
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
    serve.add_argument("--log-format", choices=["text", "json"], help="default text")
    serve.set_defaults(func=cmd_serve, remote=False)
