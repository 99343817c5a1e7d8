"""The `memorygraph` command: run the data plane, and use one from the shell.

Exit codes: 0 ok; 1 the server refused the request; 2 bad usage or configuration; 3 the server
could not be reached. Results are JSON on stdout (field names as in the gRPC API); errors are one
line on stderr.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from google.protobuf.json_format import MessageToDict
from google.protobuf.message import Message

from memorygraph import __version__
from memorygraph.archive.bundle import ArchiveError
from memorygraph.archive.cli import add_archive_commands
from memorygraph.client import Client
from memorygraph.config import load_config
from memorygraph.errors import ConfigError, InvalidArgument, RequestError, Unavailable

__all__ = ["main"]

EXIT_REFUSED, EXIT_USAGE, EXIT_UNREACHABLE = 1, 2, 3


def as_json(message: Message) -> dict[str, Any]:
    return MessageToDict(message, preserving_proto_field_name=True)


def _print(value: Any) -> None:
    if isinstance(value, Message):
        value = as_json(value)
    print(json.dumps(value, indent=2, ensure_ascii=False))


def _emit(args: argparse.Namespace, message: Message) -> None:
    """Print a created object: all of it as JSON, or just its id with --id-only."""
    if getattr(args, "id_only", False):
        print(getattr(message, "id"))  # noqa: B009 (every created message has an id)
    else:
        _print(message)


def _time(text: str) -> dt.datetime:
    try:
        return dt.datetime.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not an ISO-8601 time") from None


def _pair(text: str) -> tuple[str, str]:
    key, sep, value = text.partition("=")
    if not sep or not key:
        raise argparse.ArgumentTypeError(f"{text!r} is not KEY=VALUE")
    return key, value


def _content(text: str, file: Path | None) -> str:
    if file is not None:
        return file.read_text()
    return sys.stdin.read() if text == "-" else text


# -- commands --------------------------------------------------------------------------------


def cmd_serve(args: argparse.Namespace, _: Client | None) -> int:
    from memorygraph.server import run_server

    overrides = {
        "data_dir": args.data_dir,
        "host": args.host,
        "port": args.port,
        "metrics_port": args.metrics_port,
        "durability": args.durability,
        "log_format": args.log_format,
    }
    run_server(load_config(args.config, overrides))
    return 0


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


def cmd_session(args: argparse.Namespace, mg: Client) -> int:
    if args.action == "create":
        _emit(
            args,
            mg.create_session(
                title=args.title,
                user_id=args.user,
                agent_id=args.agent,
                model=args.model,
                metadata=dict(args.meta),
                session_id=args.id,
            ),
        )
    elif args.action == "get":
        _print(mg.get_session(args.session_id))
    elif args.action == "close":
        _print(mg.close_session(args.session_id))
    elif args.action == "delete":
        _print(mg.delete_session(args.session_id))
    else:
        _print(
            mg.list_sessions(
                limit=args.limit, page_token=args.page_token, state=args.state, user_id=args.user
            )
        )
    return 0


def cmd_prompt(args: argparse.Namespace, mg: Client) -> int:
    _emit(
        args,
        mg.add_prompt(
            args.session_id,
            _content(args.content, args.file),
            model=args.model,
            role=args.role,
            metadata=dict(args.meta),
        ),
    )
    return 0


def cmd_response(args: argparse.Namespace, mg: Client) -> int:
    _emit(
        args,
        mg.add_response(
            args.prompt_id,
            _content(args.content, args.file),
            token_usage=(args.prompt_tokens, args.completion_tokens),
            model=args.model,
            finish_reason=args.finish_reason,
            latency_ms=args.latency_ms,
            metadata=dict(args.meta),
        ),
    )
    return 0


def cmd_tool(args: argparse.Namespace, mg: Client) -> int:
    _emit(
        args,
        mg.add_tool_invocation(
            args.response_id,
            args.name,
            arguments=args.arguments,
            result=args.result,
            status=args.status,
            duration_ms=args.duration_ms,
            metadata=dict(args.meta),
        ),
    )
    return 0


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
        _print({"nodes": [as_json(n) for n in mg.stream_query(**_filters(args))]})
    else:
        _print(mg.query(limit=args.limit, page_token=args.page_token, **_filters(args)))
    return 0


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


def cmd_events(args: argparse.Namespace, mg: Client) -> int:
    events: Iterator[Any] = mg.stream_events(
        from_sequence=args.from_sequence, session_id=args.session or "", types=args.type
    )
    for count, event in enumerate(events, start=1):
        print(json.dumps(as_json(event), ensure_ascii=False), flush=True)
        if args.limit and count >= args.limit:
            break
    return 0


def cmd_health(args: argparse.Namespace, mg: Client) -> int:
    _print(mg.health())
    return 0


# -- parser ----------------------------------------------------------------------------------

Handler = Callable[[argparse.Namespace, Any], int]


def _meta_option(parser: argparse.ArgumentParser, what: str = "metadata") -> None:
    parser.add_argument(
        "--meta",
        type=_pair,
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help=f"{what} entry (repeatable)",
    )


def _id_only_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--id-only", action="store_true", help="print only the new id")


def _tls_options(parser: argparse.ArgumentParser, default: Any = None) -> None:
    """TLS to the server; also accepted after `archive run|restore` (with SUPPRESS there)."""
    parser.add_argument(
        "--ca-cert", type=Path, default=default, help="CA certificate to verify a TLS server with"
    )
    parser.add_argument(
        "--client-cert", type=Path, default=default, help="client certificate (mutual TLS)"
    )
    parser.add_argument("--client-key", type=Path, default=default, help="its private key")


def _connection_options_again(parser: argparse.ArgumentParser) -> None:
    """The global connection options, accepted once more after a subcommand."""
    parser.add_argument("--server", default=argparse.SUPPRESS, help="server address")
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
    parser.add_argument("--api-key", default=None, help="API key (env MEMORYGRAPH_API_KEY)")
    _tls_options(parser)
    parser.add_argument(
        "--timeout", type=float, default=30.0, help="seconds per call (default %(default)s)"
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

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
    serve.add_argument("--log-format", choices=["text", "json"], help="default text")
    serve.set_defaults(func=cmd_serve, remote=False)

    plugins = commands.add_parser("plugins", help="plugin configuration")
    plugins_commands = plugins.add_subparsers(dest="action", required=True, metavar="ACTION")
    check = plugins_commands.add_parser("check", help="validate a plugins.yaml file")
    check.add_argument("file", type=Path)
    check.set_defaults(func=cmd_plugins_check, remote=False)

    session = commands.add_parser("session", help="create, get, list, close, delete sessions")
    actions = session.add_subparsers(dest="action", required=True, metavar="ACTION")
    create = actions.add_parser("create", help="start a session")
    create.add_argument("--title", default="")
    create.add_argument("--user", default="", help="user id")
    create.add_argument("--agent", default="", help="agent id")
    create.add_argument("--model", default="")
    create.add_argument("--id", default="", help="choose the session id (a UUID)")
    _meta_option(create)
    _id_only_option(create)
    for name, text in (
        ("get", "show a session"),
        ("close", "close a session to writes"),
        ("delete", "delete a session and everything in it"),
    ):
        sub = actions.add_parser(name, help=text)
        sub.add_argument("session_id")
    listing = actions.add_parser("list", help="sessions, newest first")
    listing.add_argument("--limit", type=int, default=0, help="page size (default 100)")
    listing.add_argument("--page-token", default="")
    listing.add_argument("--state", choices=["active", "closed"])
    listing.add_argument("--user", default="", help="only this user's sessions")
    session.set_defaults(func=cmd_session, remote=True)

    prompt = commands.add_parser("prompt", help="record prompts")
    prompt_actions = prompt.add_subparsers(dest="action", required=True, metavar="ACTION")
    add = prompt_actions.add_parser("add", help="record a prompt in a session")
    add.add_argument("session_id")
    add.add_argument("content", nargs="?", default="-", help="text, or - for stdin")
    add.add_argument("--file", type=Path, help="read the content from a file")
    add.add_argument("--model", default="")
    add.add_argument("--role", default="")
    _meta_option(add)
    _id_only_option(add)
    prompt.set_defaults(func=cmd_prompt, remote=True)

    response = commands.add_parser("response", help="record responses")
    response_actions = response.add_subparsers(dest="action", required=True, metavar="ACTION")
    add = response_actions.add_parser("add", help="record the response to a prompt")
    add.add_argument("prompt_id")
    add.add_argument("content", nargs="?", default="-", help="text, or - for stdin")
    add.add_argument("--file", type=Path, help="read the content from a file")
    add.add_argument("--model", default="")
    add.add_argument("--prompt-tokens", type=int, default=0)
    add.add_argument("--completion-tokens", type=int, default=0)
    add.add_argument("--finish-reason", default="")
    add.add_argument("--latency-ms", type=int, default=0)
    _meta_option(add)
    _id_only_option(add)
    response.set_defaults(func=cmd_response, remote=True)

    tool = commands.add_parser("tool", help="record tool invocations")
    tool_actions = tool.add_subparsers(dest="action", required=True, metavar="ACTION")
    add = tool_actions.add_parser("add", help="record a tool call made for a response")
    add.add_argument("response_id")
    add.add_argument("--name", required=True, help="tool name")
    add.add_argument("--arguments", default="", help="arguments, usually JSON")
    add.add_argument("--result", default="")
    add.add_argument("--status", choices=["succeeded", "failed"])
    add.add_argument("--duration-ms", type=int, default=0)
    _meta_option(add)
    _id_only_option(add)
    tool.set_defaults(func=cmd_tool, remote=True)

    query = commands.add_parser("query", help="find nodes by session, kind, time, metadata")
    query.add_argument("--session", help="session id")
    query.add_argument(
        "--kind",
        action="append",
        default=[],
        choices=["session", "prompt", "response", "tool_invocation", "agent", "template"],
        help="node kind (repeatable)",
    )
    query.add_argument("--since", type=_time, help="created at or after (ISO-8601)")
    query.add_argument("--until", type=_time, help="created before (ISO-8601)")
    _meta_option(query, "metadata that must match")
    query.add_argument("--newest-first", action="store_true")
    query.add_argument("--limit", type=int, default=0, help="page size (default 100, max 1000)")
    query.add_argument("--page-token", default="")
    query.add_argument("--all", action="store_true", help="every match, streamed (no paging)")
    query.set_defaults(func=cmd_query, remote=True)

    export = commands.add_parser("export", help="a whole session as one JSON document")
    export.add_argument("session_id")
    export.add_argument("-o", "--output", type=Path, help="write to this file")
    export.set_defaults(func=cmd_export, remote=True)

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

    add_archive_commands(commands, _connection_options_again)

    health = commands.add_parser("health", help="ask the server how it is")
    health.set_defaults(func=cmd_health, remote=True)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    handler: Handler = args.func
    try:
        if not args.remote:
            return handler(args, None)
        with Client(
            args.server,
            api_key=args.api_key,
            timeout=args.timeout,
            root_certificates=args.ca_cert,
            client_cert=args.client_cert,
            client_key=args.client_key,
        ) as mg:
            return handler(args, mg)
    except ConfigError as exc:
        print(f"memorygraph: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except ArchiveError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_REFUSED
    except Unavailable as exc:
        print(f"error: cannot reach the server at {args.server}: {exc}", file=sys.stderr)
        return EXIT_UNREACHABLE
    except InvalidArgument as exc:
        print(f"error: INVALID_ARGUMENT: {exc}", file=sys.stderr)
        return EXIT_REFUSED
    except RequestError as exc:
        print(f"error: {exc.code.name}: {exc}", file=sys.stderr)
        return EXIT_REFUSED
    except OSError as exc:
        print(f"memorygraph: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        return 130
