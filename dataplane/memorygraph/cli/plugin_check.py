"""`memorygraph plugins check`: validate a plugins file without a server."""

from __future__ import annotations

import argparse
from pathlib import Path

from memorygraph.cli.options import Commands
from memorygraph.client import Client

__all__ = ["add_commands", "cmd_plugins_check"]


def cmd_plugins_check(args: argparse.Namespace, _: Client | None) -> int:
    from memorygraph.plugins.config import load_plugins_file
    from memorygraph.plugins.pipeline import build_plugin

    plugins = load_plugins_file(args.file)
    for spec in plugins.plugins:
        build_plugin(spec, lambda session, limit: 0)  # compiles patterns, opens nothing remote
    for spec in sorted(plugins.plugins, key=lambda p: (p.order, p.name)):
        state = "enabled" if spec.enabled else "disabled"
        hooks = ", ".join(spec.effective_hooks)
        print(f"{spec.name}: {spec.type}, order {spec.order}, {state}, on {hooks}")
    print(f"{args.file}: {len(plugins.plugins)} plugins, valid")
    return 0


def add_commands(commands: Commands) -> None:
    plugins = commands.add_parser("plugins", help="plugin configuration")
    plugins_commands = plugins.add_subparsers(dest="action", required=True, metavar="ACTION")
    check = plugins_commands.add_parser("check", help="validate a plugins.yaml file")
    check.add_argument("file", type=Path)
    check.set_defaults(func=cmd_plugins_check, remote=False)
