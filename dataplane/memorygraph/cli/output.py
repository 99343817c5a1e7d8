"""How commands print results: JSON on stdout, with the gRPC API's field names."""

from __future__ import annotations

import argparse
import json
from typing import Any

from google.protobuf.json_format import MessageToDict
from google.protobuf.message import Message

__all__ = ["as_json", "emit", "print_json"]


def as_json(message: Message) -> dict[str, Any]:
    return MessageToDict(message, preserving_proto_field_name=True)


def print_json(value: Any) -> None:
    if isinstance(value, Message):
        value = as_json(value)
    print(json.dumps(value, indent=2, ensure_ascii=False))


def emit(args: argparse.Namespace, message: Message) -> None:
    """Print a created object: all of it as JSON, or just its id with --id-only."""
    if getattr(args, "id_only", False):
        print(getattr(message, "id"))  # noqa: B009 (every created message has an id)
    else:
        print_json(message)
