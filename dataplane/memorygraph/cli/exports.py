"""`memorygraph export`: a whole session out of the server in one document."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from memorygraph.cli.options import Commands
from memorygraph.cli.output import as_json
from memorygraph.client import Client

__all__ = ["add_commands", "cmd_export", "export_session"]


def export_session(mg: Client, session_id: str) -> dict[str, Any]:
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


def cmd_export(args: argparse.Namespace, mg: Client) -> int:
    document = export_session(mg, args.session_id)
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


def add_commands(commands: Commands) -> None:
    export = commands.add_parser("export", help="a whole session as one JSON document")
    export.add_argument("session_id")
    export.add_argument("-o", "--output", type=Path, help="write to this file")
    export.set_defaults(func=cmd_export, remote=True)
