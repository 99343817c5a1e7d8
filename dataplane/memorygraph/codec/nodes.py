"""Nodes in the API's wire format: the one mapping between a domain `Node` and `v1.Node`.

Node records are stored in this format, so a read can hand the stored bytes to gRPC as they are.
Encoding is deterministic (metadata in key order): one node has one record, byte for byte.
"""

from __future__ import annotations

from collections.abc import Mapping

from memorygraph.codec.enums import NODE_KINDS, SESSION_STATES, TOOL_STATUSES
from memorygraph.codec.times import micros, set_timestamp, timestamp
from memorygraph.model import (
    AgentDetails,
    Node,
    NodeDetails,
    NodeKind,
    PromptDetails,
    ResponseDetails,
    SessionDetails,
    SessionState,
    TemplateDetails,
    TemplateVariable,
    TokenUsage,
    ToolInvocationDetails,
    ToolStatus,
    format_id,
    parse_id,
)
from memorygraph.v1 import graph_pb2 as pb

__all__ = [
    "agent_details",
    "decode_node",
    "encode_node",
    "node_bytes",
    "node_from_message",
    "node_message",
    "prompt_details",
    "read_usage",
    "record_metadata",
    "record_position",
    "record_session_id",
    "response_details",
    "session_message",
    "template_message",
    "tool_details",
]

# -- domain -> protobuf --------------------------------------------------------------------


def _set_usage(message: pb.TokenUsage, usage: TokenUsage) -> None:
    """Token counts, assigned one by one: the message is set even when they are all zero."""
    message.prompt_tokens = usage.prompt_tokens
    message.completion_tokens = usage.completion_tokens
    message.total_tokens = usage.total_tokens


def _optional_id(value: bytes | None) -> str:
    return format_id(value) if value is not None else ""


def session_message(node: Node) -> pb.Session:
    details = node.details_as(SessionDetails)
    message = pb.Session(
        id=format_id(node.id),
        state=SESSION_STATES.to_wire[details.state],
        title=node.content,
        user_id=details.user_id,
        agent_id=details.agent_id,
        model=details.model,
        metadata=node.metadata,
        create_time=timestamp(node.create_time),
        update_time=timestamp(node.update_time),
    )
    _set_usage(message.token_usage, details.token_usage)
    if details.close_time:
        set_timestamp(message.close_time, details.close_time)
    return message


def template_message(node: Node) -> pb.Template:
    details = node.details_as(TemplateDetails)
    return pb.Template(
        id=format_id(node.id),
        name=details.name,
        content=node.content,
        variables=[
            pb.TemplateVariable(
                name=v.name,
                description=v.description,
                required=v.required,
                default_value=v.default_value,
                pattern=v.pattern,
            )
            for v in details.variables
        ],
        metadata=node.metadata,
        usage_count=details.usage_count,
        create_time=timestamp(node.create_time),
        update_time=timestamp(node.update_time),
    )


def _set_details(message: pb.Node, node: Node) -> None:
    """The kind-specific part of a `v1.Node`: its oneof, set even when all fields are empty.
    One line per field; proto3 leaves empty values out of the record."""
    details = node.details
    if isinstance(details, PromptDetails):
        prompt = message.prompt
        prompt.SetInParent()
        prompt.model = details.model
        prompt.role = details.role
        prompt.template_id = _optional_id(details.template_id)
    elif isinstance(details, ResponseDetails):
        response = message.response  # set by the assignments, empty or not
        response.prompt_id = _optional_id(details.prompt_id)
        response.model = details.model
        _set_usage(response.token_usage, details.token_usage)
        response.finish_reason = details.finish_reason
        response.latency_ms = details.latency_ms
    elif isinstance(details, ToolInvocationDetails):
        tool = message.tool_invocation
        tool.SetInParent()
        tool.response_id = _optional_id(details.response_id)
        tool.tool_name = details.tool_name
        tool.arguments = details.arguments
        tool.result = details.result
        tool.status = TOOL_STATUSES.to_wire[details.status]
        tool.duration_ms = details.duration_ms
    elif isinstance(details, AgentDetails):
        agent = message.agent
        agent.SetInParent()
        agent.name = details.name
        agent.description = details.description
        agent.capabilities.extend(details.capabilities)
    elif isinstance(details, SessionDetails):
        message.session.CopyFrom(session_message(node))
    else:
        message.template.CopyFrom(template_message(node))


def node_message(node: Node) -> pb.Node:
    # Fields set one by one: cheaper than keyword arguments holding dicts for the messages
    # inside (this runs for every node written).
    message = pb.Node(
        id=format_id(node.id),
        kind=NODE_KINDS.to_wire[node.kind],
        session_id=_optional_id(node.session_id),
        content=node.content,
    )
    if node.metadata:
        message.metadata.update(node.metadata)
    set_timestamp(message.create_time, node.create_time)
    set_timestamp(message.update_time, node.update_time)
    _set_details(message, node)
    return message


def encode_node(node: Node) -> bytes:
    # Deterministic: metadata entries in key order, so one node has one record, byte for byte.
    return node_message(node).SerializeToString(deterministic=True)


def node_bytes(node: Node) -> bytes:
    """`node` serialized: the record the store wrote for it, when it has it."""
    return node.record if node.record is not None else encode_node(node)


# -- protobuf -> domain --------------------------------------------------------------------


def _id_or_none(text: str, field: str) -> bytes | None:
    return parse_id(text, field) if text else None


def read_usage(message: pb.TokenUsage) -> TokenUsage:
    return TokenUsage(message.prompt_tokens, message.completion_tokens, message.total_tokens)


# The details messages a node and a CreateNode request share, one reader each. A stored record
# holds only known statuses; a request's are checked (`strict`).


def prompt_details(p: pb.PromptDetails) -> PromptDetails:
    return PromptDetails(p.model, p.role, _id_or_none(p.template_id, "prompt.template_id"))


def response_details(r: pb.ResponseDetails) -> ResponseDetails:
    return ResponseDetails(
        _id_or_none(r.prompt_id, "response.prompt_id"),
        r.model,
        read_usage(r.token_usage),
        r.finish_reason,
        r.latency_ms,
    )


def tool_details(t: pb.ToolInvocationDetails, *, strict: bool = False) -> ToolInvocationDetails:
    status = (
        TOOL_STATUSES.parse(t.status, "status")
        if strict
        else TOOL_STATUSES.from_wire.get(t.status, ToolStatus.UNSPECIFIED)
    )
    return ToolInvocationDetails(
        _id_or_none(t.response_id, "tool_invocation.response_id"),
        t.tool_name,
        t.arguments,
        t.result,
        status,
        t.duration_ms,
    )


def agent_details(a: pb.AgentDetails) -> AgentDetails:
    return AgentDetails(a.name, a.description, tuple(a.capabilities))


def _details(kind: NodeKind, message: pb.Node) -> NodeDetails:
    """The details of a `kind` node (read from the oneof field of that kind, empty or not)."""
    if kind is NodeKind.PROMPT:
        return prompt_details(message.prompt)
    if kind is NodeKind.RESPONSE:
        return response_details(message.response)
    if kind is NodeKind.TOOL_INVOCATION:
        return tool_details(message.tool_invocation)
    if kind is NodeKind.AGENT:
        return agent_details(message.agent)
    if kind is NodeKind.SESSION:
        s = message.session
        return SessionDetails(
            SESSION_STATES.from_wire.get(s.state, SessionState.ACTIVE),
            s.user_id,
            s.agent_id,
            s.model,
            micros(s.close_time) if s.HasField("close_time") else 0,
            read_usage(s.token_usage),
        )
    template = message.template
    return TemplateDetails(
        template.name,
        tuple(
            TemplateVariable(v.name, v.description, v.required, v.default_value, v.pattern)
            for v in template.variables
        ),
        template.usage_count,
    )


def node_from_message(message: pb.Node, node_id: bytes | None = None) -> Node:
    """The domain node `message` describes; `node_id` saves parsing the id when the caller
    has it already (a record's key)."""
    kind = NODE_KINDS.from_wire[message.kind]
    return Node(
        id=node_id if node_id is not None else parse_id(message.id, "id"),
        kind=kind,
        session_id=_id_or_none(message.session_id, "session_id"),
        content=message.content,
        metadata=dict(message.metadata),
        create_time=micros(message.create_time),
        update_time=micros(message.update_time),
        details=_details(kind, message),
    )


def decode_node(node_id: bytes | None, raw: bytes) -> Node:
    """The node a record holds (`node_id`, when known, saves parsing the record's id)."""
    return node_from_message(pb.Node.FromString(raw), node_id)


def record_session_id(record: bytes) -> bytes | None:
    """The session of the node a record holds (None for a global node)."""
    return _id_or_none(pb.Node.FromString(record).session_id, "session_id")


def record_position(record: bytes) -> tuple[int, bytes]:
    """(create time, id) of the node a record holds."""
    message = pb.Node.FromString(record)
    return micros(message.create_time), parse_id(message.id, "id")


def record_metadata(record: bytes) -> Mapping[str, str]:
    """The metadata of a node record."""
    return pb.Node.FromString(record).metadata
