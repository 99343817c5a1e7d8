"""`memorygraph health`: ask a running server how it is."""

from __future__ import annotations

import argparse

from memorygraph.cli.options import Commands
from memorygraph.cli.output import print_json
from memorygraph.client import Client

__all__ = ["add_commands", "cmd_health"]


def cmd_health(args: argparse.Namespace, mg: Client) -> int:
    print_json(mg.health())
    return 0


def add_commands(commands: Commands) -> None:
    health = commands.add_parser("health", help="ask the server how it is")
    health.set_defaults(func=cmd_health, remote=True)
