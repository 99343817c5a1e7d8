"""`memorygraph prompt add`, `response add`, `tool add`: record the turns of a conversation."""

from __future__ import annotations

import argparse
from pathlib import Path

from memorygraph.cli.options import Commands, content, id_only_option, meta_option
from memorygraph.cli.output import emit
from memorygraph.client import Client

__all__ = ["add_commands", "cmd_prompt", "cmd_response", "cmd_tool"]


def cmd_prompt(args: argparse.Namespace, mg: Client) -> int:
    emit(
        args,
        mg.add_prompt(
            args.session_id,
            content(args.content, args.file),
            model=args.model,
            role=args.role,
            metadata=dict(args.meta),
        ),
    )
    return 0


def cmd_response(args: argparse.Namespace, mg: Client) -> int:
    emit(
        args,
        mg.add_response(
            args.prompt_id,
            content(args.content, args.file),
            token_usage=(args.prompt_tokens, args.completion_tokens),
            model=args.model,
            finish_reason=args.finish_reason,
            latency_ms=args.latency_ms,
            metadata=dict(args.meta),
        ),
    )
    return 0


def cmd_tool(args: argparse.Namespace, mg: Client) -> int:
    emit(
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


def add_commands(commands: Commands) -> None:
    prompt = commands.add_parser("prompt", help="record prompts")
    prompt_actions = prompt.add_subparsers(dest="action", required=True, metavar="ACTION")
    add = prompt_actions.add_parser("add", help="record a prompt in a session")
    add.add_argument("session_id")
    add.add_argument("content", nargs="?", default="-", help="text, or - for stdin")
    add.add_argument("--file", type=Path, help="read the content from a file")
    add.add_argument("--model", default="")
    add.add_argument("--role", default="")
    meta_option(add)
    id_only_option(add)
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
    meta_option(add)
    id_only_option(add)
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
    meta_option(add)
    id_only_option(add)
    tool.set_defaults(func=cmd_tool, remote=True)
