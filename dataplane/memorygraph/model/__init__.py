"""The domain model: entities, their kinds and details, ids, and what callers ask to create.

The bottom layer of the data plane: plain values that every other layer (codec, store, graph,
servicers) builds on. It imports nothing of MemoryGraph but `memorygraph.errors`, and nothing
of protobuf, gRPC or storage.

    kinds.py     node kinds, edge kinds, event types and small enums
    details.py   per-kind node details, token usage, template variables
    entities.py  Node, Edge, Event
    specs.py     NewSession, NewNode, NewEdge
    ids.py       time-ordered ids carrying a shard tag (UUIDv8)
"""

from memorygraph.model.details import (
    AgentDetails,
    NodeDetails,
    PromptDetails,
    ResponseDetails,
    SessionDetails,
    TemplateDetails,
    TemplateVariable,
    TokenUsage,
    ToolInvocationDetails,
    default_details,
    details_fields,
    details_from_fields,
    details_texts,
    with_texts,
)
from memorygraph.model.entities import Edge, EdgeKey, Event, Node
from memorygraph.model.ids import format_id, id_tag, name_tag, new_id, parse_id
from memorygraph.model.kinds import (
    Direction,
    EdgeKind,
    EventType,
    NodeKind,
    SessionState,
    ToolStatus,
)
from memorygraph.model.specs import IngestItem, NewEdge, NewNode, NewSession

# Microseconds past any time a node can have: the open end of time ranges.
MAX_TIME = 2**63 - 1

__all__ = [
    "MAX_TIME",
    "AgentDetails",
    "Direction",
    "Edge",
    "EdgeKey",
    "EdgeKind",
    "Event",
    "EventType",
    "IngestItem",
    "NewEdge",
    "NewNode",
    "NewSession",
    "Node",
    "NodeDetails",
    "NodeKind",
    "PromptDetails",
    "ResponseDetails",
    "SessionDetails",
    "SessionState",
    "TemplateDetails",
    "TemplateVariable",
    "TokenUsage",
    "ToolInvocationDetails",
    "ToolStatus",
    "default_details",
    "details_fields",
    "details_from_fields",
    "details_texts",
    "format_id",
    "id_tag",
    "name_tag",
    "new_id",
    "parse_id",
    "with_texts",
]
