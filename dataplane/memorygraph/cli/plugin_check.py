"""`memorygraph plugins check`: validate a plugins file without a server."""

from __future__ import annotations

import argparse
import ipaddress
from pathlib import Path

from memorygraph.cli.options import Commands
from memorygraph.client import Client

__all__ = ["add_commands", "cmd_plugins_check"]

DEFAULT_SECRETS_DIR = "/etc/memorygraph/plugin-secrets"


def _network(text: str) -> ipaddress.IPv4Network | ipaddress.IPv6Network:
    try:
        return ipaddress.ip_network(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not an IP network like 127.0.0.1/32 or fd00::/8"
        ) from None


def cmd_plugins_check(args: argparse.Namespace, _: Client | None) -> int:
    from memorygraph.plugins.config import load_plugins_file
    from memorygraph.plugins.outbound import AddressPolicy, WebhookPolicy
    from memorygraph.plugins.pipeline import PluginPipeline

    policy = WebhookPolicy(args.secrets_dir, AddressPolicy(tuple(args.allow_network)))
    plugins = load_plugins_file(args.file, policy)
    # Builds every plugin (patterns compiled) and connects to nothing.
    PluginPipeline.build(plugins, count_nodes=lambda session, limit: 0, policy=policy).close()
    for spec in sorted(plugins.plugins, key=lambda p: (p.order, p.name)):
        state = "enabled" if spec.enabled else "disabled"
        hooks = ", ".join(spec.effective_hooks)
        print(f"{spec.name}: {spec.type}, order {spec.order}, {state}, on {hooks}")
    print(f"{args.file}: {len(plugins.plugins)} plugins, valid")
    return 0


def add_commands(commands: Commands) -> None:
    plugins = commands.add_parser("plugins", help="plugin configuration")
    plugins_commands = plugins.add_subparsers(dest="action", required=True, metavar="ACTION")
    check = plugins_commands.add_parser(
        "check",
        help="validate a plugins.yaml file",
        description="Validate a plugins file as the server would: the schema, RE2 patterns, "
        "webhook tokens (only from <secrets dir>/<plugin name>/) and webhook URLs (no "
        "loopback, link-local, cloud-metadata or unspecified address unless allowed).",
    )
    check.add_argument("file", type=Path)
    check.add_argument(
        "--secrets-dir",
        type=Path,
        default=Path(DEFAULT_SECRETS_DIR),
        help="the server's plugin_secrets_dir (default %(default)s)",
    )
    check.add_argument(
        "--allow-network",
        type=_network,
        action="append",
        default=[],
        metavar="CIDR",
        help="a network of the server's plugins_allowed_networks (repeat for several)",
    )
    check.set_defaults(func=cmd_plugins_check, remote=False)
