"""`memorygraph events`: the event log as JSON lines, then live events."""

from __future__ import annotations

import argparse
import json
from collections.abc import Iterator
from typing import Any

from memorygraph.cli.options import Commands
from memorygraph.cli.output import as_json
from memorygraph.client import Client

__all__ = ["add_commands", "cmd_events"]


def cmd_events(args: argparse.Namespace, mg: Client) -> int:
    events: Iterator[Any] = mg.stream_events(
        from_sequence=args.from_sequence, session_id=args.session or "", types=args.type
    )
    for count, event in enumerate(events, start=1):
        print(json.dumps(as_json(event), ensure_ascii=False), flush=True)
        if args.limit and count >= args.limit:
            break
    return 0


def add_commands(commands: Commands) -> None:
    events = commands.add_parser("events", help="stream events as JSON lines")
    events.add_argument("--session", help="only this session's events")
    events.add_argument(
        "--from-sequence",
        type=int,
        default=0,
        help="replay from this sequence (default: only new events)",
    )
    events.add_argument(
        "--type",
        action="append",
        default=[],
        help="event type (repeatable), e.g. node_created, session_closed",
    )
    events.add_argument("--limit", type=int, default=0, help="stop after this many")
    events.set_defaults(func=cmd_events, remote=True)
