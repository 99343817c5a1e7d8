"""Nodes in the API's wire format: the one mapping between a domain `Node` and `v1.Node`.

Node records are stored in this format (`store.codec`), so a read can hand the stored bytes to
gRPC as they are, and a list of them becomes a `QueryBatch` by framing each one
(`repeated_field`). Decoding gives back the attributes the graph service builds for each kind:
fixed keys for sessions, templates and a response's token counts, only the fields that are set
for the other details, as requests record them.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from google.protobuf.timestamp_pb2 import Timestamp

from memorygraph.graph.model import Node, NodeKind, SessionState
from memorygraph.ids import format_id, parse_id
from memorygraph.v1 import graph_pb2 as pb

__all__ = [
    "NODE_KIND_VALUES",
    "QUERY_BATCH_NODES",
    "decode_node",
    "encode_node",
    "frame",
    "node_bytes",
    "node_from_message",
    "node_message",
    "record_metadata",
    "session_message",
    "template_message",
    "timestamp",
]

NODE_KINDS: dict[int, NodeKind] = {pb.NodeKind.Value(f"NODE_KIND_{k.name}"): k for k in NodeKind}
# Enum values looked up by name: typed as the generated enum classes the message stubs expect.
NODE_KIND_VALUES: dict[NodeKind, pb.NodeKind] = {
    k: getattr(pb, f"NODE_KIND_{k.name}") for k in NodeKind
}
SESSION_STATE_VALUES: dict[SessionState, pb.SessionState] = {
    SessionState.ACTIVE: pb.SESSION_STATE_ACTIVE,
    SessionState.CLOSED: pb.SESSION_STATE_CLOSED,
}
# The `nodes` field of QueryBatch and QueryResponse.
QUERY_BATCH_NODES = pb.QueryBatch.DESCRIPTOR.fields_by_name["nodes"].number
_SESSION_STATES = {value: state.value for state, value in SESSION_STATE_VALUES.items()}
TOOL_STATUS_VALUES: dict[str, pb.ToolStatus] = {
    "": pb.TOOL_STATUS_UNSPECIFIED,
    "succeeded": pb.TOOL_STATUS_SUCCEEDED,
    "failed": pb.TOOL_STATUS_FAILED,
}
_TOOL_STATUSES = {value: name for name, value in TOOL_STATUS_VALUES.items()}


def timestamp(value: int) -> Timestamp:
    return Timestamp(seconds=value // 1_000_000, nanos=(value % 1_000_000) * 1000)


def _micros(ts: Timestamp) -> int:
    return ts.seconds * 1_000_000 + ts.nanos // 1000


# -- domain -> protobuf --------------------------------------------------------------------


def _set_usage(usage: pb.TokenUsage, attrs: dict[str, Any]) -> None:
    """A session's or response's token counts; the message is set even when they are zero."""
    usage.prompt_tokens = attrs.get("prompt_tokens", 0)
    usage.completion_tokens = attrs.get("completion_tokens", 0)
    usage.total_tokens = attrs.get("total_tokens", 0)


def session_message(node: Node) -> pb.Session:
    attrs = node.attrs
    message = pb.Session(
        id=format_id(node.id),
        state=SESSION_STATE_VALUES[SessionState(attrs["state"])],
        title=node.content,
        user_id=attrs["user_id"],
        agent_id=attrs["agent_id"],
        model=attrs["model"],
        metadata=node.metadata,
        create_time=timestamp(node.create_time),
        update_time=timestamp(node.update_time),
    )
    _set_usage(message.token_usage, attrs)
    if attrs.get("close_time"):
        message.close_time.CopyFrom(timestamp(attrs["close_time"]))
    return message


def template_message(node: Node) -> pb.Template:
    return pb.Template(
        id=format_id(node.id),
        name=node.attrs["name"],
        content=node.content,
        variables=[pb.TemplateVariable(**v) for v in node.attrs["variables"]],
        metadata=node.metadata,
        usage_count=node.attrs["usage_count"],
        create_time=timestamp(node.create_time),
        update_time=timestamp(node.update_time),
    )


def _set_time(field: Timestamp, value: int) -> None:
    seconds, micros = divmod(value, 1_000_000)
    field.seconds = seconds
    field.nanos = micros * 1000


def _set_details(message: pb.Node, node: Node) -> None:
    """The kind-specific part of a `v1.Node`: its oneof, set even when all fields are empty."""
    attrs = node.attrs
    match node.kind:
        case NodeKind.PROMPT | NodeKind.AGENT:
            details: Any = message.prompt if node.kind is NodeKind.PROMPT else message.agent
            details.SetInParent()
            for name, value in attrs.items():
                if isinstance(value, list):
                    getattr(details, name).extend(value)
                else:
                    setattr(details, name, value)
        case NodeKind.RESPONSE:
            response = message.response  # set by the assignments, empty or not
            response.prompt_id = attrs.get("prompt_id", "")
            response.model = attrs.get("model", "")
            _set_usage(response.token_usage, attrs)
            response.finish_reason = attrs.get("finish_reason", "")
            response.latency_ms = attrs.get("latency_ms", 0)
        case NodeKind.TOOL_INVOCATION:
            tool = message.tool_invocation
            tool.SetInParent()
            for name, value in attrs.items():
                if name == "status":
                    tool.status = TOOL_STATUS_VALUES.get(value, pb.TOOL_STATUS_UNSPECIFIED)
                else:
                    setattr(tool, name, value)
        case NodeKind.SESSION:
            message.session.CopyFrom(session_message(node))
        case NodeKind.TEMPLATE:
            message.template.CopyFrom(template_message(node))


def node_message(node: Node) -> pb.Node:
    # Fields set one by one: cheaper than keyword arguments holding dicts for the messages
    # inside (this runs for every node written).
    message = pb.Node(
        id=format_id(node.id),
        kind=NODE_KIND_VALUES[node.kind],
        session_id=format_id(node.session_id) if node.session_id is not None else "",
        content=node.content,
    )
    if node.metadata:
        message.metadata.update(node.metadata)
    _set_time(message.create_time, node.create_time)
    _set_time(message.update_time, node.update_time)
    _set_details(message, node)
    return message


def encode_node(node: Node) -> bytes:
    # Deterministic: metadata entries in key order, so one node has one record, byte for byte.
    return node_message(node).SerializeToString(deterministic=True)


def node_bytes(node: Node) -> bytes:
    """`node` serialized: the record the store wrote for it, when it has it."""
    return node.record if node.record is not None else encode_node(node)


# -- protobuf -> domain --------------------------------------------------------------------


def _set_fields(details: Any) -> dict[str, Any]:
    """The scalar and repeated fields of `details` that are set, as request conversion keeps
    them (empty strings, zeros and empty lists left out)."""
    return {
        field.name: value if isinstance(value, str | int) else list(value)
        for field, value in details.ListFields()
        if field.message_type is None  # token usage: read on its own
    }


def _attrs(kind: NodeKind, message: pb.Node) -> dict[str, Any]:
    if kind is NodeKind.PROMPT:
        return _set_fields(message.prompt)
    if kind is NodeKind.RESPONSE:
        response = message.response
        attrs = _set_fields(response)
        usage = response.token_usage
        attrs["prompt_tokens"] = usage.prompt_tokens
        attrs["completion_tokens"] = usage.completion_tokens
        attrs["total_tokens"] = usage.total_tokens
        return attrs
    if kind is NodeKind.TOOL_INVOCATION:
        attrs = _set_fields(message.tool_invocation)
        if "status" in attrs:
            attrs["status"] = _TOOL_STATUSES[attrs["status"]]
        return attrs
    if kind is NodeKind.AGENT:
        return _set_fields(message.agent)
    if kind is NodeKind.SESSION:
        session = message.session
        usage = session.token_usage
        return {
            "state": _SESSION_STATES[session.state],
            "user_id": session.user_id,
            "agent_id": session.agent_id,
            "model": session.model,
            "close_time": _micros(session.close_time) if session.HasField("close_time") else 0,
            "prompt_tokens": usage.prompt_tokens,
            "completion_tokens": usage.completion_tokens,
            "total_tokens": usage.total_tokens,
        }
    template = message.template
    return {
        "name": template.name,
        "variables": [
            {
                "name": v.name,
                "description": v.description,
                "required": v.required,
                "default_value": v.default_value,
                "pattern": v.pattern,
            }
            for v in template.variables
        ],
        "usage_count": template.usage_count,
    }


def node_from_message(message: pb.Node, node_id: bytes | None = None) -> Node:
    """The domain node `message` describes; `node_id` saves parsing the id when the caller
    has it already (a record's key)."""
    kind = NODE_KINDS[message.kind]
    return Node(
        id=node_id if node_id is not None else parse_id(message.id, "id"),
        kind=kind,
        session_id=parse_id(message.session_id, "session_id") if message.session_id else None,
        content=message.content,
        metadata=dict(message.metadata),
        create_time=_micros(message.create_time),
        update_time=_micros(message.update_time),
        attrs=_attrs(kind, message),
    )


def decode_node(node_id: bytes | None, raw: bytes) -> Node:
    """The node a record holds (`node_id`, when known, saves parsing the record's id)."""
    return node_from_message(pb.Node.FromString(raw), node_id)


def record_metadata(framed: bytes) -> Mapping[str, str]:
    """The metadata of a node record framed as a QueryBatch entry (a QueryBatch of one)."""
    return pb.QueryBatch.FromString(framed).nodes[0].metadata


# -- framing -------------------------------------------------------------------------------


def _varint(value: int) -> bytes:
    out = bytearray()
    while value > 0x7F:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def frame(number: int, message: bytes) -> bytes:
    """A serialized message as one entry of the repeated message field `number` of an
    enclosing message. A protobuf message is the concatenation of its fields, so framed
    node records joined together are a `QueryBatch` (or the nodes of a `QueryResponse`)."""
    return _varint(number << 3 | 2) + _varint(len(message)) + message  # 2: length-delimited
