"""Python values to request fields: enum names, times, token usage, query filters.

Kinds, directions and states may be given as names ("prompt", "incoming", "closed") or as enum
values; times as `datetime` (naive means UTC). An unknown name is an `InvalidArgument` raised
before anything is sent.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from typing import Any

from google.protobuf.timestamp_pb2 import Timestamp

from memorygraph.errors import InvalidArgument
from memorygraph.v1 import graph_pb2 as pb

__all__ = [
    "direction",
    "edge_kind",
    "event_type",
    "node_kind",
    "query_filter",
    "session_state",
    "template_variable",
    "timestamp",
    "token_usage",
    "tool_status",
]


def _enum(enum: Any, prefix: str, value: str | int, what: str) -> Any:
    if isinstance(value, int):
        return value
    name = f"{prefix}{value.upper().replace('-', '_')}"
    try:
        return enum.Value(name)
    except ValueError:
        names = ", ".join(
            n.removeprefix(prefix).lower()
            for n in enum.keys()  # noqa: SIM118 (an enum wrapper, not a dict)
            if not n.endswith("UNSPECIFIED")
        )
        raise InvalidArgument(f"unknown {what} {value!r} (one of {names})") from None


def node_kind(value: str | int) -> Any:
    return _enum(pb.NodeKind, "NODE_KIND_", value, "node kind")


def edge_kind(value: str | int) -> Any:
    return _enum(pb.EdgeKind, "EDGE_KIND_", value, "edge kind")


def event_type(value: str | int) -> Any:
    return _enum(pb.EventType, "EVENT_TYPE_", value, "event type")


def direction(value: str | int) -> Any:
    return _enum(pb.Direction, "DIRECTION_", value, "direction")


def session_state(value: str | int | None) -> Any:
    """None: any state."""
    return _enum(pb.SessionState, "SESSION_STATE_", value or 0, "state")


def tool_status(value: str | int | None) -> Any:
    """None: unspecified."""
    return _enum(pb.ToolStatus, "TOOL_STATUS_", value or 0, "tool status")


def timestamp(value: dt.datetime | None) -> Timestamp | None:
    if value is None:
        return None
    if value.tzinfo is None:
        value = value.replace(tzinfo=dt.UTC)
    stamp = Timestamp()
    stamp.FromDatetime(value)
    return stamp


def token_usage(value: pb.TokenUsage | tuple[int, int] | None) -> pb.TokenUsage | None:
    """A `TokenUsage`, or (prompt_tokens, completion_tokens)."""
    if value is None or isinstance(value, pb.TokenUsage):
        return value
    prompt_tokens, completion_tokens = value
    return pb.TokenUsage(prompt_tokens=prompt_tokens, completion_tokens=completion_tokens)


def query_filter(
    *,
    session_id: str = "",
    kinds: Sequence[str | int] = (),
    start_time: dt.datetime | None = None,
    end_time: dt.datetime | None = None,
    metadata: Mapping[str, str] | None = None,
    descending: bool = False,
) -> pb.QueryFilter:
    return pb.QueryFilter(
        session_id=session_id,
        kinds=[node_kind(k) for k in kinds],
        start_time=timestamp(start_time),
        end_time=timestamp(end_time),
        metadata=dict(metadata or {}),
        descending=descending,
    )


def template_variable(value: pb.TemplateVariable | Mapping[str, Any]) -> pb.TemplateVariable:
    return value if isinstance(value, pb.TemplateVariable) else pb.TemplateVariable(**value)
