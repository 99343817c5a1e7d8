"""`memorygraph export` and `memorygraph dump`: a whole session out of the server.

`export` writes the server's export (the ExportSession RPC): canonical JSON Lines holding the
session's nodes, edges and retained events, the format archives hold and RestoreSession reads
back. `dump` is a client-side view for reading: one JSON document (`session`, `nodes`, `edges`)
assembled from several calls, without events, and read back by nothing.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from memorygraph.cli.options import Commands
from memorygraph.cli.output import as_json
from memorygraph.client import Client

__all__ = ["add_commands", "cmd_dump", "cmd_export", "dump_session"]

Handler = Callable[[argparse.Namespace, Client], int]


def cmd_export(args: argparse.Namespace, mg: Client) -> int:
    data, summary = mg.export_session(args.session_id)
    if args.output:
        args.output.write_bytes(data)
        print(
            f"wrote {summary.nodes} nodes, {summary.edges} edges and {summary.events} events "
            f"({summary.size_bytes} bytes, SHA-256 {summary.content_sha256}) to {args.output}",
            file=sys.stderr,
        )
    else:
        sys.stdout.flush()
        sys.stdout.buffer.write(data)
        sys.stdout.buffer.flush()
    return 0


def dump_session(mg: Client, session_id: str) -> dict[str, Any]:
    """The whole session: its record, every node, every edge touching them (once each)."""
    session = mg.get_session(session_id)
    nodes = list(mg.stream_query(session_id=session_id))
    edges: dict[tuple[str, int, str], Any] = {}
    for node_id in [session.id, *(n.id for n in nodes)]:
        for edge in mg.get_edges(node_id, direction="both"):
            edges[(edge.source_id, edge.kind, edge.target_id)] = edge
    return {
        "session": as_json(session),
        "nodes": [as_json(n) for n in nodes],
        "edges": [as_json(e) for e in edges.values()],
    }


def cmd_dump(args: argparse.Namespace, mg: Client) -> int:
    document = dump_session(mg, args.session_id)
    text = json.dumps(document, indent=2, ensure_ascii=False)
    if args.output:
        args.output.write_text(text + "\n")
        print(
            f"wrote {len(document['nodes'])} nodes and {len(document['edges'])} edges "
            f"to {args.output}",
            file=sys.stderr,
        )
    else:
        print(text)
    return 0


def _session_command(
    commands: Commands, name: str, handler: Handler, *, help: str, description: str
) -> None:
    command = commands.add_parser(name, help=help, description=description)
    command.add_argument("session_id")
    command.add_argument("-o", "--output", type=Path, help="write to this file")
    command.set_defaults(func=handler, remote=True)


def add_commands(commands: Commands) -> None:
    _session_command(
        commands,
        "export",
        cmd_export,
        help="the server's export of a session: JSON Lines, events included",
        description="Write the server's export of a session: canonical JSON Lines with a "
        "header, the session, its nodes, every edge touching them and its retained events, "
        "the format archives hold and RestoreSession reads back (docs/archival.md). The same "
        "session state always gives the same bytes. With -o, the counts and SHA-256 go to "
        "stderr. For one JSON document to read, see `memorygraph dump`.",
    )
    _session_command(
        commands,
        "dump",
        cmd_dump,
        help="a session, its nodes and edges as one JSON document, built by the client",
        description="Print a session as one JSON document: `session`, `nodes` (every node of "
        "the session) and `edges` (every edge touching them), with the gRPC API's field names. "
        "The client builds it from several calls: it holds no events, a session written to "
        "meanwhile may be caught half-way, and nothing reads it back. For the server's "
        "complete, restorable export, see `memorygraph export`.",
    )
