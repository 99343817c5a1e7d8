"""`memorygraph query`: find nodes by session, kind, time and metadata."""

from __future__ import annotations

import argparse
from typing import Any

from memorygraph.cli.options import Commands, iso_time, meta_option
from memorygraph.cli.output import as_json, print_json
from memorygraph.client import Client

__all__ = ["add_commands", "cmd_query"]


def _filters(args: argparse.Namespace) -> dict[str, Any]:
    return {
        "session_id": args.session or "",
        "kinds": args.kind,
        "start_time": args.since,
        "end_time": args.until,
        "metadata": dict(args.meta),
        "descending": args.newest_first,
    }


def cmd_query(args: argparse.Namespace, mg: Client) -> int:
    if args.all:
        print_json({"nodes": [as_json(n) for n in mg.stream_query(**_filters(args))]})
    else:
        print_json(mg.query(limit=args.limit, page_token=args.page_token, **_filters(args)))
    return 0


def add_commands(commands: Commands) -> None:
    query = commands.add_parser("query", help="find nodes by session, kind, time, metadata")
    query.add_argument("--session", help="session id")
    query.add_argument(
        "--kind",
        action="append",
        default=[],
        choices=["session", "prompt", "response", "tool_invocation", "agent", "template"],
        help="node kind (repeatable)",
    )
    query.add_argument("--since", type=iso_time, help="created at or after (ISO-8601)")
    query.add_argument("--until", type=iso_time, help="created before (ISO-8601)")
    meta_option(query, "metadata that must match")
    query.add_argument("--newest-first", action="store_true")
    query.add_argument("--limit", type=int, default=0, help="page size (default 100, max 1000)")
    query.add_argument("--page-token", default="")
    query.add_argument("--all", action="store_true", help="every match, streamed (no paging)")
    query.set_defaults(func=cmd_query, remote=True)
