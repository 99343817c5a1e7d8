"""Protobuf ⇄ domain conversion for the MemoryGraph API (the only place that knows both)."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from google.protobuf.timestamp_pb2 import Timestamp

from memorygraph.errors import InvalidArgument
from memorygraph.graph.model import (
    Direction,
    Edge,
    EdgeKind,
    Event,
    EventType,
    NodeKind,
    SessionState,
)
from memorygraph.graph.service import NewEdge, NewNode, NewSession
from memorygraph.graph.templates import TemplateVariable
from memorygraph.ids import format_id, parse_id
from memorygraph.v1 import graph_pb2 as pb
from memorygraph.wire import (
    node_message,
    timestamp,
)

_NODE_KINDS: dict[int, NodeKind] = {pb.NodeKind.Value(f"NODE_KIND_{k.name}"): k for k in NodeKind}
_EDGE_KINDS: dict[int, EdgeKind] = {pb.EdgeKind.Value(f"EDGE_KIND_{k.name}"): k for k in EdgeKind}
_EDGE_KIND_VALUES: dict[EdgeKind, pb.EdgeKind] = {
    k: getattr(pb, f"EDGE_KIND_{k.name}") for k in EdgeKind
}
_EVENT_TYPES: dict[int, EventType] = {
    pb.EventType.Value(f"EVENT_TYPE_{k.name}"): k for k in EventType
}
_EVENT_TYPE_VALUES: dict[EventType, pb.EventType] = {
    k: getattr(pb, f"EVENT_TYPE_{k.name}") for k in EventType
}
_DIRECTIONS: dict[int, Direction] = {
    pb.DIRECTION_UNSPECIFIED: Direction.OUTGOING,
    pb.DIRECTION_OUTGOING: Direction.OUTGOING,
    pb.DIRECTION_INCOMING: Direction.INCOMING,
    pb.DIRECTION_BOTH: Direction.BOTH,
}
_SESSION_STATES: dict[int, SessionState] = {
    pb.SESSION_STATE_ACTIVE: SessionState.ACTIVE,
    pb.SESSION_STATE_CLOSED: SessionState.CLOSED,
}
_TOOL_STATUS_NAMES: dict[int, str] = {
    pb.TOOL_STATUS_UNSPECIFIED: "",
    pb.TOOL_STATUS_SUCCEEDED: "succeeded",
    pb.TOOL_STATUS_FAILED: "failed",
}


# -- ids, enums, times ---------------------------------------------------------------------


def node_id(text: str, field: str = "node_id") -> bytes:
    return parse_id(text, field)


def optional_id(text: str, field: str) -> bytes | None:
    return parse_id(text, field) if text else None


def node_kind(value: int, field: str = "kind") -> NodeKind:
    if value == pb.NODE_KIND_UNSPECIFIED:
        raise InvalidArgument(f"{field} is required (one of {_enum_names(_NODE_KINDS)})")
    try:
        return _NODE_KINDS[value]
    except KeyError:
        raise InvalidArgument(
            f"{field} {value} is not a known node kind (one of {_enum_names(_NODE_KINDS)})"
        ) from None


def node_kinds(values: Iterable[int], field: str = "kinds") -> frozenset[NodeKind]:
    return frozenset(node_kind(v, field) for v in values)


def edge_kind(value: int, field: str = "kind") -> EdgeKind:
    if value == pb.EDGE_KIND_UNSPECIFIED:
        raise InvalidArgument(f"{field} is required (one of {_enum_names(_EDGE_KINDS)})")
    try:
        return _EDGE_KINDS[value]
    except KeyError:
        raise InvalidArgument(
            f"{field} {value} is not a known edge kind (one of {_enum_names(_EDGE_KINDS)})"
        ) from None


def edge_kinds(values: Iterable[int], field: str = "kinds") -> list[EdgeKind]:
    return [edge_kind(v, field) for v in values]


def event_types(values: Iterable[int]) -> frozenset[EventType]:
    found = set()
    for value in values:
        if value not in _EVENT_TYPES:
            raise InvalidArgument(
                f"types: {value} is not a known event type (one of {_enum_names(_EVENT_TYPES)})"
            )
        found.add(_EVENT_TYPES[value])
    return frozenset(found)


def direction(value: int) -> Direction:
    try:
        return _DIRECTIONS[value]
    except KeyError:
        raise InvalidArgument(f"direction {value} is not a known direction") from None


def session_state(value: int) -> SessionState | None:
    if value == pb.SESSION_STATE_UNSPECIFIED:
        return None
    try:
        return _SESSION_STATES[value]
    except KeyError:
        raise InvalidArgument(f"state {value} is not a known session state") from None


def tool_status(value: int) -> str:
    try:
        return _TOOL_STATUS_NAMES[value]
    except KeyError:
        raise InvalidArgument(f"status {value} is not a known tool status") from None


def _enum_names(mapping: dict[int, Any]) -> str:
    return ", ".join(k.name for k in mapping.values())


def micros(ts: Timestamp, default: int) -> int:
    if ts.seconds == 0 and ts.nanos == 0:
        return default
    if ts.seconds < 0:
        raise InvalidArgument("times before 1970 are not supported")
    return ts.seconds * 1_000_000 + ts.nanos // 1000


# -- domain -> protobuf --------------------------------------------------------------------


def edge_message(edge: Edge) -> pb.Edge:
    return pb.Edge(
        source_id=format_id(edge.source_id),
        target_id=format_id(edge.target_id),
        kind=_EDGE_KIND_VALUES[edge.kind],
        metadata=edge.metadata,
        create_time=timestamp(edge.create_time),
    )


def event_message(event: Event) -> pb.Event:
    message = pb.Event(
        sequence=event.sequence,
        type=_EVENT_TYPE_VALUES[event.type],
        time=timestamp(event.time),
        session_id=format_id(event.session_id) if event.session_id is not None else "",
    )
    if event.node is not None:
        message.node.CopyFrom(node_message(event.node))
    if event.edge is not None:
        message.edge.CopyFrom(edge_message(event.edge))
    return message


# -- protobuf -> domain --------------------------------------------------------------------


def node_details(request: pb.CreateNodeRequest, kind: NodeKind) -> dict[str, Any]:
    """Kind-specific attributes of a CreateNode request, ids parsed, empty fields dropped."""
    which = request.WhichOneof("details")
    expected = {
        NodeKind.PROMPT: "prompt",
        NodeKind.RESPONSE: "response",
        NodeKind.TOOL_INVOCATION: "tool_invocation",
        NodeKind.AGENT: "agent",
    }.get(kind)
    if which is None:
        return {}
    if which != expected:
        raise InvalidArgument(f"details.{which} does not fit a node of kind {kind}")
    attrs: dict[str, Any]
    if which == "prompt":
        p = request.prompt
        attrs = {
            "model": p.model,
            "role": p.role,
            "template_id": optional_id(p.template_id, "prompt.template_id"),
        }
    elif which == "response":
        r = request.response
        attrs = {
            "prompt_id": optional_id(r.prompt_id, "response.prompt_id"),
            "model": r.model,
            "prompt_tokens": r.token_usage.prompt_tokens,
            "completion_tokens": r.token_usage.completion_tokens,
            "total_tokens": r.token_usage.total_tokens,
            "finish_reason": r.finish_reason,
            "latency_ms": r.latency_ms,
        }
    elif which == "tool_invocation":
        t = request.tool_invocation
        attrs = {
            "response_id": optional_id(t.response_id, "tool_invocation.response_id"),
            "tool_name": t.tool_name,
            "arguments": t.arguments,
            "result": t.result,
            "status": tool_status(t.status),
            "duration_ms": t.duration_ms,
        }
    else:
        a = request.agent
        attrs = {"name": a.name, "description": a.description, "capabilities": list(a.capabilities)}
    return {k: v for k, v in attrs.items() if v not in (None, "", 0, [])}


def template_variables(variables: Iterable[pb.TemplateVariable]) -> list[TemplateVariable]:
    return [
        TemplateVariable(
            name=v.name,
            description=v.description,
            required=v.required,
            default_value=v.default_value,
            pattern=v.pattern,
        )
        for v in variables
    ]


def new_session(request: pb.CreateSessionRequest) -> NewSession:
    return NewSession(
        session_id=optional_id(request.session_id, "session_id"),
        title=request.title,
        user_id=request.user_id,
        agent_id=request.agent_id,
        model=request.model,
        metadata=dict(request.metadata),
    )


def new_node(request: pb.CreateNodeRequest) -> NewNode:
    kind = node_kind(request.kind)
    return NewNode(
        kind=kind,
        session_id=optional_id(request.session_id, "session_id"),
        content=request.content,
        metadata=dict(request.metadata),
        attrs=node_details(request, kind),
        node_id=optional_id(request.node_id, "node_id"),
    )


def new_edge(request: pb.CreateEdgeRequest) -> NewEdge:
    return NewEdge(
        source_id=node_id(request.source_id, "source_id"),
        target_id=node_id(request.target_id, "target_id"),
        kind=edge_kind(request.kind),
        metadata=dict(request.metadata),
    )


def present(**fields: Any) -> dict[str, Any]:
    """The fields a request actually set (proto3 scalars are empty/zero when unset)."""
    return {k: v for k, v in fields.items() if v not in ("", 0)}


def prompt_node(request: pb.AddPromptRequest) -> NewNode:
    return NewNode(
        kind=NodeKind.PROMPT,
        session_id=node_id(request.session_id, "session_id"),
        content=request.content,
        metadata=dict(request.metadata),
        attrs=present(model=request.model, role=request.role),
    )


def response_node(request: pb.AddResponseRequest) -> NewNode:
    usage = request.token_usage
    return NewNode(
        kind=NodeKind.RESPONSE,
        content=request.content,
        metadata=dict(request.metadata),
        attrs={
            "prompt_id": node_id(request.prompt_id, "prompt_id"),
            **present(
                model=request.model,
                prompt_tokens=usage.prompt_tokens,
                completion_tokens=usage.completion_tokens,
                total_tokens=usage.total_tokens,
                finish_reason=request.finish_reason,
                latency_ms=request.latency_ms,
            ),
        },
    )


def tool_node(request: pb.AddToolInvocationRequest) -> NewNode:
    return NewNode(
        kind=NodeKind.TOOL_INVOCATION,
        metadata=dict(request.metadata),
        attrs={
            "response_id": node_id(request.response_id, "response_id"),
            "tool_name": request.tool_name,
            **present(
                arguments=request.arguments,
                result=request.result,
                status=tool_status(request.status),
                duration_ms=request.duration_ms,
            ),
        },
    )
