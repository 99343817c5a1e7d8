"""The `memorygraph` command."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from memorygraph.config import load_config
from memorygraph.errors import ConfigError

__all__ = ["main"]


def _serve(args: argparse.Namespace) -> int:
    from memorygraph.server import run_server

    overrides: dict[str, Any] = {
        "data_dir": args.data_dir,
        "host": args.host,
        "port": args.port,
        "metrics_port": args.metrics_port,
        "durability": args.durability,
        "log_format": args.log_format,
    }
    try:
        run_server(load_config(args.config, overrides))
    except ConfigError as exc:
        print(f"memorygraph serve: {exc}", file=sys.stderr)
        return 2
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="memorygraph", description="MemoryGraph: the memory of LLM applications as a graph."
    )
    commands = parser.add_subparsers(dest="command", required=True)
    serve = commands.add_parser(
        "serve",
        help="run the data plane",
        description=(
            "Run the data plane: gRPC on --port (default 50051), metrics and probes on "
            "--metrics-port (default 9090), data in --data-dir (default ./data), durable "
            "writes. Flags override MEMORYGRAPH_* variables, which override --config."
        ),
    )
    serve.add_argument("--config", type=Path, help="YAML config file (MEMORYGRAPH_CONFIG)")
    serve.add_argument("--data-dir", type=Path, help="RocksDB directory (default ./data)")
    serve.add_argument("--host", help="address to bind (default 0.0.0.0)")
    serve.add_argument("--port", type=int, help="gRPC port (default 50051)")
    serve.add_argument("--metrics-port", type=int, help="HTTP metrics/probe port (default 9090)")
    serve.add_argument("--durability", choices=["durable", "fast"], help="default durable")
    serve.add_argument("--log-format", choices=["text", "json"], help="default text")
    serve.set_defaults(func=_serve)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    result: int = args.func(args)
    return result
