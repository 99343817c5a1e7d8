"""`memorygraph session create|get|close|delete|list`."""

from __future__ import annotations

import argparse

from memorygraph.cli.options import Commands, id_only_option, meta_option
from memorygraph.cli.output import emit, print_json
from memorygraph.client import Client

__all__ = ["add_commands", "cmd_session"]


def cmd_session(args: argparse.Namespace, mg: Client) -> int:
    if args.action == "create":
        emit(
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
        print_json(mg.get_session(args.session_id))
    elif args.action == "close":
        print_json(mg.close_session(args.session_id))
    elif args.action == "delete":
        print_json(mg.delete_session(args.session_id))
    else:
        print_json(
            mg.list_sessions(
                limit=args.limit, page_token=args.page_token, state=args.state, user_id=args.user
            )
        )
    return 0


def add_commands(commands: Commands) -> None:
    session = commands.add_parser("session", help="create, get, list, close, delete sessions")
    actions = session.add_subparsers(dest="action", required=True, metavar="ACTION")
    create = actions.add_parser("create", help="start a session")
    create.add_argument("--title", default="")
    create.add_argument("--user", default="", help="user id")
    create.add_argument("--agent", default="", help="agent id")
    create.add_argument("--model", default="")
    create.add_argument("--id", default="", help="choose the session id (a UUID)")
    meta_option(create)
    id_only_option(create)
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
