"""Option types and options shared by several commands."""

from __future__ import annotations

import argparse
import datetime as dt
import sys
from pathlib import Path
from typing import TypeAlias

__all__ = ["Commands", "content", "id_only_option", "iso_time", "key_value", "meta_option"]


def iso_time(text: str) -> dt.datetime:
    try:
        return dt.datetime.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not an ISO-8601 time") from None


def key_value(text: str) -> tuple[str, str]:
    key, sep, value = text.partition("=")
    if not sep or not key:
        raise argparse.ArgumentTypeError(f"{text!r} is not KEY=VALUE")
    return key, value


def content(text: str, file: Path | None) -> str:
    """A text argument: given, read from `file`, or from stdin when it is `-`."""
    if file is not None:
        return file.read_text()
    return sys.stdin.read() if text == "-" else text


def meta_option(
    parser: argparse.ArgumentParser, what: str = "metadata", flag: str = "--meta"
) -> None:
    parser.add_argument(
        flag,
        type=key_value,
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help=f"{what} entry (repeatable)",
    )


def id_only_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--id-only", action="store_true", help="print only the new id")


# What `add_subparsers()` returns: each command group adds its commands to it.
Commands: TypeAlias = "argparse._SubParsersAction[argparse.ArgumentParser]"
