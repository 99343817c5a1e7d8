"""`memorygraph turn add` (a whole turn in one call), `prompt add`, `response add`, `tool add`:
record the turns of a conversation."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from google.protobuf.json_format import ParseDict, ParseError

from memorygraph.cli.options import Commands, content, id_only_option, meta_option
from memorygraph.cli.output import emit, print_json
from memorygraph.client import Client
from memorygraph.v1 import graph_pb2 as pb

__all__ = ["add_commands", "cmd_prompt", "cmd_response", "cmd_tool", "cmd_turn"]

# What a --tool object of `turn add` may hold: a tool invocation's fields but the response's id.
TOOL_FIELDS = frozenset(pb.AddToolInvocationRequest.DESCRIPTOR.fields_by_name) - {"response_id"}
TOOL_STATUSES = {"succeeded": pb.TOOL_STATUS_SUCCEEDED, "failed": pb.TOOL_STATUS_FAILED}


def tool_object(text: str) -> pb.AddToolInvocationRequest:
    """A --tool argument: a JSON object of tool invocation fields."""
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        raise argparse.ArgumentTypeError(f"not JSON: {exc}") from None
    if not isinstance(value, dict):
        raise argparse.ArgumentTypeError('expected a JSON object such as {"tool_name": "search"}')
    unknown = sorted(set(value) - TOOL_FIELDS)
    if unknown:
        raise argparse.ArgumentTypeError(
            f"unknown field {unknown[0]!r}; expected some of {', '.join(sorted(TOOL_FIELDS))}"
        )
    status = value.pop("status", None)
    if status is not None and status not in TOOL_STATUSES:
        raise argparse.ArgumentTypeError(f'status {status!r}: expected "succeeded" or "failed"')
    try:  # each field of the type the request gives it
        request = ParseDict(value, pb.AddToolInvocationRequest())
    except ParseError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    if status is not None:
        request.status = TOOL_STATUSES[status]
    return request


def cmd_turn(args: argparse.Namespace, mg: Client) -> int:
    turn = mg.record_turn(
        args.session_id,
        args.prompt,
        args.response,
        model=args.model,
        token_usage=(args.prompt_tokens, args.completion_tokens),
        tool_invocations=args.tool,
        prompt_fields={"role": args.role, "metadata": dict(args.meta)},
        response_fields={
            "finish_reason": args.finish_reason,
            "latency_ms": args.latency_ms,
            "metadata": dict(args.response_meta),
        },
    )
    if args.id_only:
        for node in (turn.prompt, turn.response, *turn.tool_invocations):
            print(node.id)
    else:
        print_json(turn)
    return 0


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
    turn = commands.add_parser("turn", help="record whole turns")
    turn_actions = turn.add_subparsers(dest="action", required=True, metavar="ACTION")
    add = turn_actions.add_parser(
        "add",
        help="record a prompt, its response and the tools it invoked in one call",
        description="Record a whole turn in one call: the prompt, the response answering it "
        "and the tool invocations it made, written together or not at all.",
    )
    add.add_argument("session_id")
    add.add_argument("prompt", help="the prompt's text")
    add.add_argument("response", help="the response's text")
    add.add_argument("--model", default="", help="the model, on the prompt and the response")
    add.add_argument("--role", default="", help="the prompt's role")
    add.add_argument("--prompt-tokens", type=int, default=0)
    add.add_argument("--completion-tokens", type=int, default=0)
    add.add_argument("--finish-reason", default="")
    add.add_argument("--latency-ms", type=int, default=0)
    add.add_argument(
        "--tool",
        type=tool_object,
        action="append",
        default=[],
        metavar="JSON",
        help="a tool invocation the response made, as a JSON object of its fields "
        '(tool_name, arguments, result, status: "succeeded" or "failed", duration_ms, '
        "metadata); repeatable, in order",
    )
    meta_option(add, "the prompt's metadata")
    meta_option(add, "the response's metadata", flag="--response-meta")
    add.add_argument(
        "--id-only",
        action="store_true",
        help="print only the new ids, one a line: the prompt, the response, each tool invocation",
    )
    turn.set_defaults(func=cmd_turn, remote=True)

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
