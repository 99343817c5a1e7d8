"""The `memorygraph` command line: the global options, and each command group's commands.

Commands live in their group's module (which adds them here and holds their handlers); this
module only decides the order they are listed in and the options every command shares.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path
from typing import Any

from memorygraph import __version__
from memorygraph.archive.cli import add_archive_commands, secret_file
from memorygraph.cli import (
    event_stream,
    exports,
    health,
    plugin_check,
    queries,
    serve,
    sessions,
    shards,
    turns,
)

__all__ = ["build_parser"]


def _tls_options(parser: argparse.ArgumentParser, default: Any = None) -> None:
    """TLS to the server; also accepted after `archive run|restore` (with SUPPRESS there)."""
    parser.add_argument(
        "--ca-cert", type=Path, default=default, help="CA certificate to verify a TLS server with"
    )
    parser.add_argument(
        "--client-cert", type=Path, default=default, help="client certificate (mutual TLS)"
    )
    parser.add_argument("--client-key", type=Path, default=default, help="its private key")


def _api_key_file_option(parser: argparse._ActionsContainer, default: Any = None) -> None:
    parser.add_argument(
        "--api-key-file",
        dest="api_key",
        type=secret_file,
        default=default,
        metavar="FILE",
        help="file holding the API key (e.g. a mounted Secret's key)",
    )


def _connection_options_again(parser: argparse.ArgumentParser) -> None:
    """The global connection options, accepted once more after a subcommand."""
    parser.add_argument("--server", default=argparse.SUPPRESS, help="server address")
    _api_key_file_option(parser, argparse.SUPPRESS)
    _tls_options(parser, argparse.SUPPRESS)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="memorygraph",
        description="MemoryGraph: the memory of LLM applications as a typed graph.",
        epilog="Exit codes: 0 ok, 1 refused by the server, 2 usage or configuration error, "
        "3 server unreachable.",
    )
    parser.add_argument("--version", action="version", version=f"memorygraph {__version__}")
    parser.add_argument(
        "--server",
        default=os.environ.get("MEMORYGRAPH_SERVER", "127.0.0.1:50051"),
        help="server address (env MEMORYGRAPH_SERVER; default %(default)s)",
    )
    key = parser.add_mutually_exclusive_group()
    key.add_argument("--api-key", default=None, help="API key (env MEMORYGRAPH_API_KEY)")
    _api_key_file_option(key)
    _tls_options(parser)
    parser.add_argument(
        "--timeout", type=float, default=30.0, help="seconds per call (default %(default)s)"
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for group in (serve, plugin_check, sessions, turns, queries, exports, event_stream, shards):
        group.add_commands(commands)
    add_archive_commands(commands, _connection_options_again)
    health.add_commands(commands)
    return parser
