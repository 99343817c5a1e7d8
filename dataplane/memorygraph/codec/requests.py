"""Requests -> what callers ask to create, checked field by field (ids parsed, enums known).

Graph rules (which session, which parent, limits) are the graph service's business; this module
only reads what the request says.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from functools import partial

from memorygraph.codec.enums import edge_kind, node_kind, tool_status
from memorygraph.codec.nodes import (
    agent_details,
    prompt_details,
    read_usage,
    response_details,
    tool_details,
)
from memorygraph.errors import InvalidArgument
from memorygraph.model import (
    NewEdge,
    NewNode,
    NewSession,
    NodeDetails,
    NodeKind,
    PromptDetails,
    ResponseDetails,
    TemplateVariable,
    ToolInvocationDetails,
    id_tag,
    new_id,
    parse_id,
)
from memorygraph.v1 import graph_pb2 as pb

__all__ = [
    "new_edge",
    "new_node",
    "new_session",
    "node_id",
    "optional_id",
    "prompt_node",
    "response_node",
    "template_variables",
    "tool_node",
    "turn_nodes",
]

# Tool invocations one RecordTurn may carry.
MAX_TURN_TOOLS = 1000

# Which details field of CreateNodeRequest each kind takes.
_DETAILS_FIELD = {
    NodeKind.PROMPT: "prompt",
    NodeKind.RESPONSE: "response",
    NodeKind.TOOL_INVOCATION: "tool_invocation",
    NodeKind.AGENT: "agent",
}


def node_id(text: str, field: str = "node_id") -> bytes:
    return parse_id(text, field)


def optional_id(text: str, field: str) -> bytes | None:
    return parse_id(text, field) if text else None


def _node_details(request: pb.CreateNodeRequest, kind: NodeKind) -> NodeDetails | None:
    """The details a CreateNode request gives, None when it gives none."""
    which = request.WhichOneof("details")
    if which is None:
        return None
    if which != _DETAILS_FIELD.get(kind):
        raise InvalidArgument(f"details.{which} does not fit a node of kind {kind}")
    if which == "prompt":
        return prompt_details(request.prompt)
    if which == "response":
        return response_details(request.response)
    if which == "tool_invocation":
        return tool_details(request.tool_invocation, strict=True)
    return agent_details(request.agent)


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
        details=_node_details(request, kind),
        node_id=optional_id(request.node_id, "node_id"),
    )


def new_edge(request: pb.CreateEdgeRequest) -> NewEdge:
    return NewEdge(
        source_id=node_id(request.source_id, "source_id"),
        target_id=node_id(request.target_id, "target_id"),
        kind=edge_kind(request.kind),
        metadata=dict(request.metadata),
    )


def prompt_node(request: pb.AddPromptRequest) -> NewNode:
    return NewNode(
        kind=NodeKind.PROMPT,
        session_id=node_id(request.session_id, "session_id"),
        content=request.content,
        metadata=dict(request.metadata),
        details=PromptDetails(model=request.model, role=request.role),
    )


def response_node(request: pb.AddResponseRequest, prompt_id: bytes | None = None) -> NewNode:
    """The response `request` asks for, answering `prompt_id` when given (else the request's)."""
    return NewNode(
        kind=NodeKind.RESPONSE,
        content=request.content,
        metadata=dict(request.metadata),
        details=ResponseDetails(
            prompt_id=prompt_id or node_id(request.prompt_id, "prompt_id"),
            model=request.model,
            token_usage=read_usage(request.token_usage),
            finish_reason=request.finish_reason,
            latency_ms=request.latency_ms,
        ),
    )


def tool_node(request: pb.AddToolInvocationRequest, response_id: bytes | None = None) -> NewNode:
    """The tool invocation `request` asks for, made by `response_id` when given (else the
    request's)."""
    return NewNode(
        kind=NodeKind.TOOL_INVOCATION,
        metadata=dict(request.metadata),
        details=ToolInvocationDetails(
            response_id=response_id or node_id(request.response_id, "response_id"),
            tool_name=request.tool_name,
            arguments=request.arguments,
            result=request.result,
            status=tool_status(request.status),
            duration_ms=request.duration_ms,
        ),
    )


def turn_nodes(request: pb.RecordTurnRequest) -> tuple[list[NewNode], list[str]]:
    """The nodes of a turn in the order they are created (the prompt, the response, the tool
    invocations), and the name of each for errors. Their ids are made now, on the session's
    shard, so that the response names the prompt and each invocation the response before any
    of them exists; each names the session too (plugins see it before the parents exist)."""
    if not request.HasField("prompt"):
        raise InvalidArgument("prompt is required")
    if not request.HasField("response"):
        raise InvalidArgument("response is required: record a prompt alone with AddPrompt")
    if request.response.prompt_id:
        raise InvalidArgument("response.prompt_id must be empty: it answers the turn's prompt")
    tools = request.tool_invocations
    if len(tools) > MAX_TURN_TOOLS:
        raise InvalidArgument(f"at most {MAX_TURN_TOOLS} tool invocations per turn")
    for i, tool in enumerate(tools):
        if tool.response_id:
            raise InvalidArgument(
                f"tool_invocations[{i}].response_id must be empty: the turn's response made it"
            )
    prompt = _turn_part("prompt", partial(prompt_node, request.prompt))
    assert prompt.session_id is not None  # a prompt names its session
    session_id, tag = prompt.session_id, id_tag(prompt.session_id)

    def placed(node: NewNode) -> NewNode:
        node.session_id = session_id
        node.node_id, node.fresh_id = new_id(tag), True
        return node

    placed(prompt)
    response = placed(
        _turn_part("response", partial(response_node, request.response, prompt.node_id))
    )
    names = ["prompt", "response", *(f"tool_invocations[{i}]" for i in range(len(tools)))]
    nodes = [prompt, response] + [
        placed(_turn_part(name, partial(tool_node, tool, response.node_id)))
        for name, tool in zip(names[2:], tools, strict=True)
    ]
    return nodes, names


def _turn_part(name: str, make: Callable[[], NewNode]) -> NewNode:
    """`make()`, a refusal naming the part of the turn it concerns."""
    try:
        return make()
    except InvalidArgument as exc:
        raise InvalidArgument(f"{name}: {exc}") from None
