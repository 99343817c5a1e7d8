import datetime

from google.protobuf import field_mask_pb2 as _field_mask_pb2
from google.protobuf import timestamp_pb2 as _timestamp_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class NodeKind(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    NODE_KIND_UNSPECIFIED: _ClassVar[NodeKind]
    NODE_KIND_SESSION: _ClassVar[NodeKind]
    NODE_KIND_PROMPT: _ClassVar[NodeKind]
    NODE_KIND_RESPONSE: _ClassVar[NodeKind]
    NODE_KIND_TOOL_INVOCATION: _ClassVar[NodeKind]
    NODE_KIND_AGENT: _ClassVar[NodeKind]
    NODE_KIND_TEMPLATE: _ClassVar[NodeKind]

class EdgeKind(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    EDGE_KIND_UNSPECIFIED: _ClassVar[EdgeKind]
    EDGE_KIND_BELONGS_TO: _ClassVar[EdgeKind]
    EDGE_KIND_RESPONDS_TO: _ClassVar[EdgeKind]
    EDGE_KIND_FOLLOWS: _ClassVar[EdgeKind]
    EDGE_KIND_INVOKES: _ClassVar[EdgeKind]
    EDGE_KIND_HANDLED_BY: _ClassVar[EdgeKind]
    EDGE_KIND_INSTANTIATES: _ClassVar[EdgeKind]
    EDGE_KIND_INHERITS: _ClassVar[EdgeKind]
    EDGE_KIND_TRANSFERS_TO: _ClassVar[EdgeKind]
    EDGE_KIND_REFERENCES: _ClassVar[EdgeKind]

class SessionState(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    SESSION_STATE_UNSPECIFIED: _ClassVar[SessionState]
    SESSION_STATE_ACTIVE: _ClassVar[SessionState]
    SESSION_STATE_CLOSED: _ClassVar[SessionState]

class Direction(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    DIRECTION_UNSPECIFIED: _ClassVar[Direction]
    DIRECTION_OUTGOING: _ClassVar[Direction]
    DIRECTION_INCOMING: _ClassVar[Direction]
    DIRECTION_BOTH: _ClassVar[Direction]

class ToolStatus(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    TOOL_STATUS_UNSPECIFIED: _ClassVar[ToolStatus]
    TOOL_STATUS_SUCCEEDED: _ClassVar[ToolStatus]
    TOOL_STATUS_FAILED: _ClassVar[ToolStatus]

class EventType(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    EVENT_TYPE_UNSPECIFIED: _ClassVar[EventType]
    EVENT_TYPE_SESSION_CREATED: _ClassVar[EventType]
    EVENT_TYPE_SESSION_CLOSED: _ClassVar[EventType]
    EVENT_TYPE_SESSION_DELETED: _ClassVar[EventType]
    EVENT_TYPE_NODE_CREATED: _ClassVar[EventType]
    EVENT_TYPE_NODE_UPDATED: _ClassVar[EventType]
    EVENT_TYPE_NODE_DELETED: _ClassVar[EventType]
    EVENT_TYPE_EDGE_CREATED: _ClassVar[EventType]
    EVENT_TYPE_EDGE_DELETED: _ClassVar[EventType]
    EVENT_TYPE_SESSION_ARCHIVED: _ClassVar[EventType]
    EVENT_TYPE_SESSION_RESTORED: _ClassVar[EventType]
NODE_KIND_UNSPECIFIED: NodeKind
NODE_KIND_SESSION: NodeKind
NODE_KIND_PROMPT: NodeKind
NODE_KIND_RESPONSE: NodeKind
NODE_KIND_TOOL_INVOCATION: NodeKind
NODE_KIND_AGENT: NodeKind
NODE_KIND_TEMPLATE: NodeKind
EDGE_KIND_UNSPECIFIED: EdgeKind
EDGE_KIND_BELONGS_TO: EdgeKind
EDGE_KIND_RESPONDS_TO: EdgeKind
EDGE_KIND_FOLLOWS: EdgeKind
EDGE_KIND_INVOKES: EdgeKind
EDGE_KIND_HANDLED_BY: EdgeKind
EDGE_KIND_INSTANTIATES: EdgeKind
EDGE_KIND_INHERITS: EdgeKind
EDGE_KIND_TRANSFERS_TO: EdgeKind
EDGE_KIND_REFERENCES: EdgeKind
SESSION_STATE_UNSPECIFIED: SessionState
SESSION_STATE_ACTIVE: SessionState
SESSION_STATE_CLOSED: SessionState
DIRECTION_UNSPECIFIED: Direction
DIRECTION_OUTGOING: Direction
DIRECTION_INCOMING: Direction
DIRECTION_BOTH: Direction
TOOL_STATUS_UNSPECIFIED: ToolStatus
TOOL_STATUS_SUCCEEDED: ToolStatus
TOOL_STATUS_FAILED: ToolStatus
EVENT_TYPE_UNSPECIFIED: EventType
EVENT_TYPE_SESSION_CREATED: EventType
EVENT_TYPE_SESSION_CLOSED: EventType
EVENT_TYPE_SESSION_DELETED: EventType
EVENT_TYPE_NODE_CREATED: EventType
EVENT_TYPE_NODE_UPDATED: EventType
EVENT_TYPE_NODE_DELETED: EventType
EVENT_TYPE_EDGE_CREATED: EventType
EVENT_TYPE_EDGE_DELETED: EventType
EVENT_TYPE_SESSION_ARCHIVED: EventType
EVENT_TYPE_SESSION_RESTORED: EventType

class TokenUsage(_message.Message):
    __slots__ = ("prompt_tokens", "completion_tokens", "total_tokens")
    PROMPT_TOKENS_FIELD_NUMBER: _ClassVar[int]
    COMPLETION_TOKENS_FIELD_NUMBER: _ClassVar[int]
    TOTAL_TOKENS_FIELD_NUMBER: _ClassVar[int]
    prompt_tokens: int
    completion_tokens: int
    total_tokens: int
    def __init__(self, prompt_tokens: _Optional[int] = ..., completion_tokens: _Optional[int] = ..., total_tokens: _Optional[int] = ...) -> None: ...

class Session(_message.Message):
    __slots__ = ("id", "state", "title", "user_id", "agent_id", "model", "metadata", "create_time", "update_time", "close_time", "token_usage")
    class MetadataEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    ID_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    TITLE_FIELD_NUMBER: _ClassVar[int]
    USER_ID_FIELD_NUMBER: _ClassVar[int]
    AGENT_ID_FIELD_NUMBER: _ClassVar[int]
    MODEL_FIELD_NUMBER: _ClassVar[int]
    METADATA_FIELD_NUMBER: _ClassVar[int]
    CREATE_TIME_FIELD_NUMBER: _ClassVar[int]
    UPDATE_TIME_FIELD_NUMBER: _ClassVar[int]
    CLOSE_TIME_FIELD_NUMBER: _ClassVar[int]
    TOKEN_USAGE_FIELD_NUMBER: _ClassVar[int]
    id: str
    state: SessionState
    title: str
    user_id: str
    agent_id: str
    model: str
    metadata: _containers.ScalarMap[str, str]
    create_time: _timestamp_pb2.Timestamp
    update_time: _timestamp_pb2.Timestamp
    close_time: _timestamp_pb2.Timestamp
    token_usage: TokenUsage
    def __init__(self, id: _Optional[str] = ..., state: _Optional[_Union[SessionState, str]] = ..., title: _Optional[str] = ..., user_id: _Optional[str] = ..., agent_id: _Optional[str] = ..., model: _Optional[str] = ..., metadata: _Optional[_Mapping[str, str]] = ..., create_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., update_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., close_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., token_usage: _Optional[_Union[TokenUsage, _Mapping]] = ...) -> None: ...

class PromptDetails(_message.Message):
    __slots__ = ("model", "role", "template_id")
    MODEL_FIELD_NUMBER: _ClassVar[int]
    ROLE_FIELD_NUMBER: _ClassVar[int]
    TEMPLATE_ID_FIELD_NUMBER: _ClassVar[int]
    model: str
    role: str
    template_id: str
    def __init__(self, model: _Optional[str] = ..., role: _Optional[str] = ..., template_id: _Optional[str] = ...) -> None: ...

class ResponseDetails(_message.Message):
    __slots__ = ("prompt_id", "model", "token_usage", "finish_reason", "latency_ms")
    PROMPT_ID_FIELD_NUMBER: _ClassVar[int]
    MODEL_FIELD_NUMBER: _ClassVar[int]
    TOKEN_USAGE_FIELD_NUMBER: _ClassVar[int]
    FINISH_REASON_FIELD_NUMBER: _ClassVar[int]
    LATENCY_MS_FIELD_NUMBER: _ClassVar[int]
    prompt_id: str
    model: str
    token_usage: TokenUsage
    finish_reason: str
    latency_ms: int
    def __init__(self, prompt_id: _Optional[str] = ..., model: _Optional[str] = ..., token_usage: _Optional[_Union[TokenUsage, _Mapping]] = ..., finish_reason: _Optional[str] = ..., latency_ms: _Optional[int] = ...) -> None: ...

class ToolInvocationDetails(_message.Message):
    __slots__ = ("response_id", "tool_name", "arguments", "result", "status", "duration_ms")
    RESPONSE_ID_FIELD_NUMBER: _ClassVar[int]
    TOOL_NAME_FIELD_NUMBER: _ClassVar[int]
    ARGUMENTS_FIELD_NUMBER: _ClassVar[int]
    RESULT_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    DURATION_MS_FIELD_NUMBER: _ClassVar[int]
    response_id: str
    tool_name: str
    arguments: str
    result: str
    status: ToolStatus
    duration_ms: int
    def __init__(self, response_id: _Optional[str] = ..., tool_name: _Optional[str] = ..., arguments: _Optional[str] = ..., result: _Optional[str] = ..., status: _Optional[_Union[ToolStatus, str]] = ..., duration_ms: _Optional[int] = ...) -> None: ...

class AgentDetails(_message.Message):
    __slots__ = ("name", "description", "capabilities")
    NAME_FIELD_NUMBER: _ClassVar[int]
    DESCRIPTION_FIELD_NUMBER: _ClassVar[int]
    CAPABILITIES_FIELD_NUMBER: _ClassVar[int]
    name: str
    description: str
    capabilities: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, name: _Optional[str] = ..., description: _Optional[str] = ..., capabilities: _Optional[_Iterable[str]] = ...) -> None: ...

class Node(_message.Message):
    __slots__ = ("id", "kind", "session_id", "content", "metadata", "create_time", "update_time", "prompt", "response", "tool_invocation", "agent", "session", "template")
    class MetadataEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    ID_FIELD_NUMBER: _ClassVar[int]
    KIND_FIELD_NUMBER: _ClassVar[int]
    SESSION_ID_FIELD_NUMBER: _ClassVar[int]
    CONTENT_FIELD_NUMBER: _ClassVar[int]
    METADATA_FIELD_NUMBER: _ClassVar[int]
    CREATE_TIME_FIELD_NUMBER: _ClassVar[int]
    UPDATE_TIME_FIELD_NUMBER: _ClassVar[int]
    PROMPT_FIELD_NUMBER: _ClassVar[int]
    RESPONSE_FIELD_NUMBER: _ClassVar[int]
    TOOL_INVOCATION_FIELD_NUMBER: _ClassVar[int]
    AGENT_FIELD_NUMBER: _ClassVar[int]
    SESSION_FIELD_NUMBER: _ClassVar[int]
    TEMPLATE_FIELD_NUMBER: _ClassVar[int]
    id: str
    kind: NodeKind
    session_id: str
    content: str
    metadata: _containers.ScalarMap[str, str]
    create_time: _timestamp_pb2.Timestamp
    update_time: _timestamp_pb2.Timestamp
    prompt: PromptDetails
    response: ResponseDetails
    tool_invocation: ToolInvocationDetails
    agent: AgentDetails
    session: Session
    template: Template
    def __init__(self, id: _Optional[str] = ..., kind: _Optional[_Union[NodeKind, str]] = ..., session_id: _Optional[str] = ..., content: _Optional[str] = ..., metadata: _Optional[_Mapping[str, str]] = ..., create_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., update_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., prompt: _Optional[_Union[PromptDetails, _Mapping]] = ..., response: _Optional[_Union[ResponseDetails, _Mapping]] = ..., tool_invocation: _Optional[_Union[ToolInvocationDetails, _Mapping]] = ..., agent: _Optional[_Union[AgentDetails, _Mapping]] = ..., session: _Optional[_Union[Session, _Mapping]] = ..., template: _Optional[_Union[Template, _Mapping]] = ...) -> None: ...

class Edge(_message.Message):
    __slots__ = ("source_id", "target_id", "kind", "metadata", "create_time")
    class MetadataEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    SOURCE_ID_FIELD_NUMBER: _ClassVar[int]
    TARGET_ID_FIELD_NUMBER: _ClassVar[int]
    KIND_FIELD_NUMBER: _ClassVar[int]
    METADATA_FIELD_NUMBER: _ClassVar[int]
    CREATE_TIME_FIELD_NUMBER: _ClassVar[int]
    source_id: str
    target_id: str
    kind: EdgeKind
    metadata: _containers.ScalarMap[str, str]
    create_time: _timestamp_pb2.Timestamp
    def __init__(self, source_id: _Optional[str] = ..., target_id: _Optional[str] = ..., kind: _Optional[_Union[EdgeKind, str]] = ..., metadata: _Optional[_Mapping[str, str]] = ..., create_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class CreateSessionRequest(_message.Message):
    __slots__ = ("session_id", "title", "user_id", "agent_id", "model", "metadata")
    class MetadataEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    SESSION_ID_FIELD_NUMBER: _ClassVar[int]
    TITLE_FIELD_NUMBER: _ClassVar[int]
    USER_ID_FIELD_NUMBER: _ClassVar[int]
    AGENT_ID_FIELD_NUMBER: _ClassVar[int]
    MODEL_FIELD_NUMBER: _ClassVar[int]
    METADATA_FIELD_NUMBER: _ClassVar[int]
    session_id: str
    title: str
    user_id: str
    agent_id: str
    model: str
    metadata: _containers.ScalarMap[str, str]
    def __init__(self, session_id: _Optional[str] = ..., title: _Optional[str] = ..., user_id: _Optional[str] = ..., agent_id: _Optional[str] = ..., model: _Optional[str] = ..., metadata: _Optional[_Mapping[str, str]] = ...) -> None: ...

class GetSessionRequest(_message.Message):
    __slots__ = ("session_id",)
    SESSION_ID_FIELD_NUMBER: _ClassVar[int]
    session_id: str
    def __init__(self, session_id: _Optional[str] = ...) -> None: ...

class CloseSessionRequest(_message.Message):
    __slots__ = ("session_id",)
    SESSION_ID_FIELD_NUMBER: _ClassVar[int]
    session_id: str
    def __init__(self, session_id: _Optional[str] = ...) -> None: ...

class DeleteSessionRequest(_message.Message):
    __slots__ = ("session_id",)
    SESSION_ID_FIELD_NUMBER: _ClassVar[int]
    session_id: str
    def __init__(self, session_id: _Optional[str] = ...) -> None: ...

class DeleteSessionResponse(_message.Message):
    __slots__ = ("deleted_nodes", "deleted_edges")
    DELETED_NODES_FIELD_NUMBER: _ClassVar[int]
    DELETED_EDGES_FIELD_NUMBER: _ClassVar[int]
    deleted_nodes: int
    deleted_edges: int
    def __init__(self, deleted_nodes: _Optional[int] = ..., deleted_edges: _Optional[int] = ...) -> None: ...

class ListSessionsRequest(_message.Message):
    __slots__ = ("limit", "page_token", "state", "user_id")
    LIMIT_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    USER_ID_FIELD_NUMBER: _ClassVar[int]
    limit: int
    page_token: str
    state: SessionState
    user_id: str
    def __init__(self, limit: _Optional[int] = ..., page_token: _Optional[str] = ..., state: _Optional[_Union[SessionState, str]] = ..., user_id: _Optional[str] = ...) -> None: ...

class ListSessionsResponse(_message.Message):
    __slots__ = ("sessions", "next_page_token")
    SESSIONS_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    sessions: _containers.RepeatedCompositeFieldContainer[Session]
    next_page_token: str
    def __init__(self, sessions: _Optional[_Iterable[_Union[Session, _Mapping]]] = ..., next_page_token: _Optional[str] = ...) -> None: ...

class CreateNodeRequest(_message.Message):
    __slots__ = ("node_id", "kind", "session_id", "content", "metadata", "prompt", "response", "tool_invocation", "agent")
    class MetadataEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    NODE_ID_FIELD_NUMBER: _ClassVar[int]
    KIND_FIELD_NUMBER: _ClassVar[int]
    SESSION_ID_FIELD_NUMBER: _ClassVar[int]
    CONTENT_FIELD_NUMBER: _ClassVar[int]
    METADATA_FIELD_NUMBER: _ClassVar[int]
    PROMPT_FIELD_NUMBER: _ClassVar[int]
    RESPONSE_FIELD_NUMBER: _ClassVar[int]
    TOOL_INVOCATION_FIELD_NUMBER: _ClassVar[int]
    AGENT_FIELD_NUMBER: _ClassVar[int]
    node_id: str
    kind: NodeKind
    session_id: str
    content: str
    metadata: _containers.ScalarMap[str, str]
    prompt: PromptDetails
    response: ResponseDetails
    tool_invocation: ToolInvocationDetails
    agent: AgentDetails
    def __init__(self, node_id: _Optional[str] = ..., kind: _Optional[_Union[NodeKind, str]] = ..., session_id: _Optional[str] = ..., content: _Optional[str] = ..., metadata: _Optional[_Mapping[str, str]] = ..., prompt: _Optional[_Union[PromptDetails, _Mapping]] = ..., response: _Optional[_Union[ResponseDetails, _Mapping]] = ..., tool_invocation: _Optional[_Union[ToolInvocationDetails, _Mapping]] = ..., agent: _Optional[_Union[AgentDetails, _Mapping]] = ...) -> None: ...

class GetNodeRequest(_message.Message):
    __slots__ = ("node_id",)
    NODE_ID_FIELD_NUMBER: _ClassVar[int]
    node_id: str
    def __init__(self, node_id: _Optional[str] = ...) -> None: ...

class UpdateNodeRequest(_message.Message):
    __slots__ = ("node_id", "content", "metadata", "update_mask")
    class MetadataEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    NODE_ID_FIELD_NUMBER: _ClassVar[int]
    CONTENT_FIELD_NUMBER: _ClassVar[int]
    METADATA_FIELD_NUMBER: _ClassVar[int]
    UPDATE_MASK_FIELD_NUMBER: _ClassVar[int]
    node_id: str
    content: str
    metadata: _containers.ScalarMap[str, str]
    update_mask: _field_mask_pb2.FieldMask
    def __init__(self, node_id: _Optional[str] = ..., content: _Optional[str] = ..., metadata: _Optional[_Mapping[str, str]] = ..., update_mask: _Optional[_Union[_field_mask_pb2.FieldMask, _Mapping]] = ...) -> None: ...

class DeleteNodeRequest(_message.Message):
    __slots__ = ("node_id",)
    NODE_ID_FIELD_NUMBER: _ClassVar[int]
    node_id: str
    def __init__(self, node_id: _Optional[str] = ...) -> None: ...

class DeleteNodeResponse(_message.Message):
    __slots__ = ("deleted_edges",)
    DELETED_EDGES_FIELD_NUMBER: _ClassVar[int]
    deleted_edges: int
    def __init__(self, deleted_edges: _Optional[int] = ...) -> None: ...

class BatchCreateNodesRequest(_message.Message):
    __slots__ = ("requests",)
    REQUESTS_FIELD_NUMBER: _ClassVar[int]
    requests: _containers.RepeatedCompositeFieldContainer[CreateNodeRequest]
    def __init__(self, requests: _Optional[_Iterable[_Union[CreateNodeRequest, _Mapping]]] = ...) -> None: ...

class BatchCreateNodesResponse(_message.Message):
    __slots__ = ("nodes",)
    NODES_FIELD_NUMBER: _ClassVar[int]
    nodes: _containers.RepeatedCompositeFieldContainer[Node]
    def __init__(self, nodes: _Optional[_Iterable[_Union[Node, _Mapping]]] = ...) -> None: ...

class BatchGetNodesRequest(_message.Message):
    __slots__ = ("node_ids",)
    NODE_IDS_FIELD_NUMBER: _ClassVar[int]
    node_ids: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, node_ids: _Optional[_Iterable[str]] = ...) -> None: ...

class BatchGetNodesResponse(_message.Message):
    __slots__ = ("nodes", "missing_ids")
    NODES_FIELD_NUMBER: _ClassVar[int]
    MISSING_IDS_FIELD_NUMBER: _ClassVar[int]
    nodes: _containers.RepeatedCompositeFieldContainer[Node]
    missing_ids: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, nodes: _Optional[_Iterable[_Union[Node, _Mapping]]] = ..., missing_ids: _Optional[_Iterable[str]] = ...) -> None: ...

class CreateEdgeRequest(_message.Message):
    __slots__ = ("source_id", "target_id", "kind", "metadata")
    class MetadataEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    SOURCE_ID_FIELD_NUMBER: _ClassVar[int]
    TARGET_ID_FIELD_NUMBER: _ClassVar[int]
    KIND_FIELD_NUMBER: _ClassVar[int]
    METADATA_FIELD_NUMBER: _ClassVar[int]
    source_id: str
    target_id: str
    kind: EdgeKind
    metadata: _containers.ScalarMap[str, str]
    def __init__(self, source_id: _Optional[str] = ..., target_id: _Optional[str] = ..., kind: _Optional[_Union[EdgeKind, str]] = ..., metadata: _Optional[_Mapping[str, str]] = ...) -> None: ...

class GetEdgesRequest(_message.Message):
    __slots__ = ("node_id", "direction", "kinds")
    NODE_ID_FIELD_NUMBER: _ClassVar[int]
    DIRECTION_FIELD_NUMBER: _ClassVar[int]
    KINDS_FIELD_NUMBER: _ClassVar[int]
    node_id: str
    direction: Direction
    kinds: _containers.RepeatedScalarFieldContainer[EdgeKind]
    def __init__(self, node_id: _Optional[str] = ..., direction: _Optional[_Union[Direction, str]] = ..., kinds: _Optional[_Iterable[_Union[EdgeKind, str]]] = ...) -> None: ...

class GetEdgesResponse(_message.Message):
    __slots__ = ("edges",)
    EDGES_FIELD_NUMBER: _ClassVar[int]
    edges: _containers.RepeatedCompositeFieldContainer[Edge]
    def __init__(self, edges: _Optional[_Iterable[_Union[Edge, _Mapping]]] = ...) -> None: ...

class DeleteEdgeRequest(_message.Message):
    __slots__ = ("source_id", "target_id", "kind")
    SOURCE_ID_FIELD_NUMBER: _ClassVar[int]
    TARGET_ID_FIELD_NUMBER: _ClassVar[int]
    KIND_FIELD_NUMBER: _ClassVar[int]
    source_id: str
    target_id: str
    kind: EdgeKind
    def __init__(self, source_id: _Optional[str] = ..., target_id: _Optional[str] = ..., kind: _Optional[_Union[EdgeKind, str]] = ...) -> None: ...

class DeleteEdgeResponse(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class QueryFilter(_message.Message):
    __slots__ = ("session_id", "kinds", "start_time", "end_time", "metadata", "descending")
    class MetadataEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    SESSION_ID_FIELD_NUMBER: _ClassVar[int]
    KINDS_FIELD_NUMBER: _ClassVar[int]
    START_TIME_FIELD_NUMBER: _ClassVar[int]
    END_TIME_FIELD_NUMBER: _ClassVar[int]
    METADATA_FIELD_NUMBER: _ClassVar[int]
    DESCENDING_FIELD_NUMBER: _ClassVar[int]
    session_id: str
    kinds: _containers.RepeatedScalarFieldContainer[NodeKind]
    start_time: _timestamp_pb2.Timestamp
    end_time: _timestamp_pb2.Timestamp
    metadata: _containers.ScalarMap[str, str]
    descending: bool
    def __init__(self, session_id: _Optional[str] = ..., kinds: _Optional[_Iterable[_Union[NodeKind, str]]] = ..., start_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., end_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., metadata: _Optional[_Mapping[str, str]] = ..., descending: _Optional[bool] = ...) -> None: ...

class QueryRequest(_message.Message):
    __slots__ = ("filter", "limit", "page_token")
    FILTER_FIELD_NUMBER: _ClassVar[int]
    LIMIT_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    filter: QueryFilter
    limit: int
    page_token: str
    def __init__(self, filter: _Optional[_Union[QueryFilter, _Mapping]] = ..., limit: _Optional[int] = ..., page_token: _Optional[str] = ...) -> None: ...

class QueryResponse(_message.Message):
    __slots__ = ("nodes", "next_page_token")
    NODES_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    nodes: _containers.RepeatedCompositeFieldContainer[Node]
    next_page_token: str
    def __init__(self, nodes: _Optional[_Iterable[_Union[Node, _Mapping]]] = ..., next_page_token: _Optional[str] = ...) -> None: ...

class StreamQueryRequest(_message.Message):
    __slots__ = ("filter", "batch_size", "limit")
    FILTER_FIELD_NUMBER: _ClassVar[int]
    BATCH_SIZE_FIELD_NUMBER: _ClassVar[int]
    LIMIT_FIELD_NUMBER: _ClassVar[int]
    filter: QueryFilter
    batch_size: int
    limit: int
    def __init__(self, filter: _Optional[_Union[QueryFilter, _Mapping]] = ..., batch_size: _Optional[int] = ..., limit: _Optional[int] = ...) -> None: ...

class QueryBatch(_message.Message):
    __slots__ = ("nodes",)
    NODES_FIELD_NUMBER: _ClassVar[int]
    nodes: _containers.RepeatedCompositeFieldContainer[Node]
    def __init__(self, nodes: _Optional[_Iterable[_Union[Node, _Mapping]]] = ...) -> None: ...

class TraverseRequest(_message.Message):
    __slots__ = ("start_node_id", "edge_kinds", "direction", "max_depth", "max_nodes")
    START_NODE_ID_FIELD_NUMBER: _ClassVar[int]
    EDGE_KINDS_FIELD_NUMBER: _ClassVar[int]
    DIRECTION_FIELD_NUMBER: _ClassVar[int]
    MAX_DEPTH_FIELD_NUMBER: _ClassVar[int]
    MAX_NODES_FIELD_NUMBER: _ClassVar[int]
    start_node_id: str
    edge_kinds: _containers.RepeatedScalarFieldContainer[EdgeKind]
    direction: Direction
    max_depth: int
    max_nodes: int
    def __init__(self, start_node_id: _Optional[str] = ..., edge_kinds: _Optional[_Iterable[_Union[EdgeKind, str]]] = ..., direction: _Optional[_Union[Direction, str]] = ..., max_depth: _Optional[int] = ..., max_nodes: _Optional[int] = ...) -> None: ...

class TraversedNode(_message.Message):
    __slots__ = ("node", "depth")
    NODE_FIELD_NUMBER: _ClassVar[int]
    DEPTH_FIELD_NUMBER: _ClassVar[int]
    node: Node
    depth: int
    def __init__(self, node: _Optional[_Union[Node, _Mapping]] = ..., depth: _Optional[int] = ...) -> None: ...

class TraverseResponse(_message.Message):
    __slots__ = ("nodes", "edges", "truncated")
    NODES_FIELD_NUMBER: _ClassVar[int]
    EDGES_FIELD_NUMBER: _ClassVar[int]
    TRUNCATED_FIELD_NUMBER: _ClassVar[int]
    nodes: _containers.RepeatedCompositeFieldContainer[TraversedNode]
    edges: _containers.RepeatedCompositeFieldContainer[Edge]
    truncated: bool
    def __init__(self, nodes: _Optional[_Iterable[_Union[TraversedNode, _Mapping]]] = ..., edges: _Optional[_Iterable[_Union[Edge, _Mapping]]] = ..., truncated: _Optional[bool] = ...) -> None: ...

class AddPromptRequest(_message.Message):
    __slots__ = ("session_id", "content", "model", "role", "metadata")
    class MetadataEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    SESSION_ID_FIELD_NUMBER: _ClassVar[int]
    CONTENT_FIELD_NUMBER: _ClassVar[int]
    MODEL_FIELD_NUMBER: _ClassVar[int]
    ROLE_FIELD_NUMBER: _ClassVar[int]
    METADATA_FIELD_NUMBER: _ClassVar[int]
    session_id: str
    content: str
    model: str
    role: str
    metadata: _containers.ScalarMap[str, str]
    def __init__(self, session_id: _Optional[str] = ..., content: _Optional[str] = ..., model: _Optional[str] = ..., role: _Optional[str] = ..., metadata: _Optional[_Mapping[str, str]] = ...) -> None: ...

class AddResponseRequest(_message.Message):
    __slots__ = ("prompt_id", "content", "model", "token_usage", "finish_reason", "latency_ms", "metadata")
    class MetadataEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    PROMPT_ID_FIELD_NUMBER: _ClassVar[int]
    CONTENT_FIELD_NUMBER: _ClassVar[int]
    MODEL_FIELD_NUMBER: _ClassVar[int]
    TOKEN_USAGE_FIELD_NUMBER: _ClassVar[int]
    FINISH_REASON_FIELD_NUMBER: _ClassVar[int]
    LATENCY_MS_FIELD_NUMBER: _ClassVar[int]
    METADATA_FIELD_NUMBER: _ClassVar[int]
    prompt_id: str
    content: str
    model: str
    token_usage: TokenUsage
    finish_reason: str
    latency_ms: int
    metadata: _containers.ScalarMap[str, str]
    def __init__(self, prompt_id: _Optional[str] = ..., content: _Optional[str] = ..., model: _Optional[str] = ..., token_usage: _Optional[_Union[TokenUsage, _Mapping]] = ..., finish_reason: _Optional[str] = ..., latency_ms: _Optional[int] = ..., metadata: _Optional[_Mapping[str, str]] = ...) -> None: ...

class AddToolInvocationRequest(_message.Message):
    __slots__ = ("response_id", "tool_name", "arguments", "result", "status", "duration_ms", "metadata")
    class MetadataEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    RESPONSE_ID_FIELD_NUMBER: _ClassVar[int]
    TOOL_NAME_FIELD_NUMBER: _ClassVar[int]
    ARGUMENTS_FIELD_NUMBER: _ClassVar[int]
    RESULT_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    DURATION_MS_FIELD_NUMBER: _ClassVar[int]
    METADATA_FIELD_NUMBER: _ClassVar[int]
    response_id: str
    tool_name: str
    arguments: str
    result: str
    status: ToolStatus
    duration_ms: int
    metadata: _containers.ScalarMap[str, str]
    def __init__(self, response_id: _Optional[str] = ..., tool_name: _Optional[str] = ..., arguments: _Optional[str] = ..., result: _Optional[str] = ..., status: _Optional[_Union[ToolStatus, str]] = ..., duration_ms: _Optional[int] = ..., metadata: _Optional[_Mapping[str, str]] = ...) -> None: ...

class RecordTurnRequest(_message.Message):
    __slots__ = ("prompt", "response", "tool_invocations")
    PROMPT_FIELD_NUMBER: _ClassVar[int]
    RESPONSE_FIELD_NUMBER: _ClassVar[int]
    TOOL_INVOCATIONS_FIELD_NUMBER: _ClassVar[int]
    prompt: AddPromptRequest
    response: AddResponseRequest
    tool_invocations: _containers.RepeatedCompositeFieldContainer[AddToolInvocationRequest]
    def __init__(self, prompt: _Optional[_Union[AddPromptRequest, _Mapping]] = ..., response: _Optional[_Union[AddResponseRequest, _Mapping]] = ..., tool_invocations: _Optional[_Iterable[_Union[AddToolInvocationRequest, _Mapping]]] = ...) -> None: ...

class RecordTurnResponse(_message.Message):
    __slots__ = ("prompt", "response", "tool_invocations")
    PROMPT_FIELD_NUMBER: _ClassVar[int]
    RESPONSE_FIELD_NUMBER: _ClassVar[int]
    TOOL_INVOCATIONS_FIELD_NUMBER: _ClassVar[int]
    prompt: Node
    response: Node
    tool_invocations: _containers.RepeatedCompositeFieldContainer[Node]
    def __init__(self, prompt: _Optional[_Union[Node, _Mapping]] = ..., response: _Optional[_Union[Node, _Mapping]] = ..., tool_invocations: _Optional[_Iterable[_Union[Node, _Mapping]]] = ...) -> None: ...

class TemplateVariable(_message.Message):
    __slots__ = ("name", "description", "required", "default_value", "pattern")
    NAME_FIELD_NUMBER: _ClassVar[int]
    DESCRIPTION_FIELD_NUMBER: _ClassVar[int]
    REQUIRED_FIELD_NUMBER: _ClassVar[int]
    DEFAULT_VALUE_FIELD_NUMBER: _ClassVar[int]
    PATTERN_FIELD_NUMBER: _ClassVar[int]
    name: str
    description: str
    required: bool
    default_value: str
    pattern: str
    def __init__(self, name: _Optional[str] = ..., description: _Optional[str] = ..., required: _Optional[bool] = ..., default_value: _Optional[str] = ..., pattern: _Optional[str] = ...) -> None: ...

class Template(_message.Message):
    __slots__ = ("id", "name", "content", "variables", "metadata", "usage_count", "create_time", "update_time")
    class MetadataEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    ID_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    CONTENT_FIELD_NUMBER: _ClassVar[int]
    VARIABLES_FIELD_NUMBER: _ClassVar[int]
    METADATA_FIELD_NUMBER: _ClassVar[int]
    USAGE_COUNT_FIELD_NUMBER: _ClassVar[int]
    CREATE_TIME_FIELD_NUMBER: _ClassVar[int]
    UPDATE_TIME_FIELD_NUMBER: _ClassVar[int]
    id: str
    name: str
    content: str
    variables: _containers.RepeatedCompositeFieldContainer[TemplateVariable]
    metadata: _containers.ScalarMap[str, str]
    usage_count: int
    create_time: _timestamp_pb2.Timestamp
    update_time: _timestamp_pb2.Timestamp
    def __init__(self, id: _Optional[str] = ..., name: _Optional[str] = ..., content: _Optional[str] = ..., variables: _Optional[_Iterable[_Union[TemplateVariable, _Mapping]]] = ..., metadata: _Optional[_Mapping[str, str]] = ..., usage_count: _Optional[int] = ..., create_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., update_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class CreateTemplateRequest(_message.Message):
    __slots__ = ("template_id", "name", "content", "variables", "metadata")
    class MetadataEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    TEMPLATE_ID_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    CONTENT_FIELD_NUMBER: _ClassVar[int]
    VARIABLES_FIELD_NUMBER: _ClassVar[int]
    METADATA_FIELD_NUMBER: _ClassVar[int]
    template_id: str
    name: str
    content: str
    variables: _containers.RepeatedCompositeFieldContainer[TemplateVariable]
    metadata: _containers.ScalarMap[str, str]
    def __init__(self, template_id: _Optional[str] = ..., name: _Optional[str] = ..., content: _Optional[str] = ..., variables: _Optional[_Iterable[_Union[TemplateVariable, _Mapping]]] = ..., metadata: _Optional[_Mapping[str, str]] = ...) -> None: ...

class GetTemplateRequest(_message.Message):
    __slots__ = ("template_id", "name")
    TEMPLATE_ID_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    template_id: str
    name: str
    def __init__(self, template_id: _Optional[str] = ..., name: _Optional[str] = ...) -> None: ...

class InstantiateTemplateRequest(_message.Message):
    __slots__ = ("template_id", "name", "variables", "session_id", "model", "role", "metadata")
    class VariablesEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    class MetadataEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    TEMPLATE_ID_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    VARIABLES_FIELD_NUMBER: _ClassVar[int]
    SESSION_ID_FIELD_NUMBER: _ClassVar[int]
    MODEL_FIELD_NUMBER: _ClassVar[int]
    ROLE_FIELD_NUMBER: _ClassVar[int]
    METADATA_FIELD_NUMBER: _ClassVar[int]
    template_id: str
    name: str
    variables: _containers.ScalarMap[str, str]
    session_id: str
    model: str
    role: str
    metadata: _containers.ScalarMap[str, str]
    def __init__(self, template_id: _Optional[str] = ..., name: _Optional[str] = ..., variables: _Optional[_Mapping[str, str]] = ..., session_id: _Optional[str] = ..., model: _Optional[str] = ..., role: _Optional[str] = ..., metadata: _Optional[_Mapping[str, str]] = ...) -> None: ...

class InstantiateTemplateResponse(_message.Message):
    __slots__ = ("content", "prompt")
    CONTENT_FIELD_NUMBER: _ClassVar[int]
    PROMPT_FIELD_NUMBER: _ClassVar[int]
    content: str
    prompt: Node
    def __init__(self, content: _Optional[str] = ..., prompt: _Optional[_Union[Node, _Mapping]] = ...) -> None: ...

class HealthRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class HealthResponse(_message.Message):
    __slots__ = ("status", "version", "uptime_seconds", "schema_version", "durability", "shards")
    class Status(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
        __slots__ = ()
        STATUS_UNSPECIFIED: _ClassVar[HealthResponse.Status]
        STATUS_SERVING: _ClassVar[HealthResponse.Status]
        STATUS_NOT_SERVING: _ClassVar[HealthResponse.Status]
    STATUS_UNSPECIFIED: HealthResponse.Status
    STATUS_SERVING: HealthResponse.Status
    STATUS_NOT_SERVING: HealthResponse.Status
    STATUS_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    UPTIME_SECONDS_FIELD_NUMBER: _ClassVar[int]
    SCHEMA_VERSION_FIELD_NUMBER: _ClassVar[int]
    DURABILITY_FIELD_NUMBER: _ClassVar[int]
    SHARDS_FIELD_NUMBER: _ClassVar[int]
    status: HealthResponse.Status
    version: str
    uptime_seconds: int
    schema_version: int
    durability: str
    shards: int
    def __init__(self, status: _Optional[_Union[HealthResponse.Status, str]] = ..., version: _Optional[str] = ..., uptime_seconds: _Optional[int] = ..., schema_version: _Optional[int] = ..., durability: _Optional[str] = ..., shards: _Optional[int] = ...) -> None: ...

class GetMetricsRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class GetShardMapRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class MoveShardRequest(_message.Message):
    __slots__ = ("shard", "worker")
    SHARD_FIELD_NUMBER: _ClassVar[int]
    WORKER_FIELD_NUMBER: _ClassVar[int]
    shard: int
    worker: int
    def __init__(self, shard: _Optional[int] = ..., worker: _Optional[int] = ...) -> None: ...

class MoveShardResponse(_message.Message):
    __slots__ = ("epoch", "copied_keys", "fenced_seconds")
    EPOCH_FIELD_NUMBER: _ClassVar[int]
    COPIED_KEYS_FIELD_NUMBER: _ClassVar[int]
    FENCED_SECONDS_FIELD_NUMBER: _ClassVar[int]
    epoch: int
    copied_keys: int
    fenced_seconds: float
    def __init__(self, epoch: _Optional[int] = ..., copied_keys: _Optional[int] = ..., fenced_seconds: _Optional[float] = ...) -> None: ...

class ShardMap(_message.Message):
    __slots__ = ("epoch", "shards", "workers", "owners")
    EPOCH_FIELD_NUMBER: _ClassVar[int]
    SHARDS_FIELD_NUMBER: _ClassVar[int]
    WORKERS_FIELD_NUMBER: _ClassVar[int]
    OWNERS_FIELD_NUMBER: _ClassVar[int]
    epoch: int
    shards: int
    workers: _containers.RepeatedScalarFieldContainer[str]
    owners: _containers.RepeatedScalarFieldContainer[int]
    def __init__(self, epoch: _Optional[int] = ..., shards: _Optional[int] = ..., workers: _Optional[_Iterable[str]] = ..., owners: _Optional[_Iterable[int]] = ...) -> None: ...

class GetMetricsResponse(_message.Message):
    __slots__ = ("sessions", "active_sessions", "nodes_by_kind", "edges", "token_usage", "requests_by_method", "store_size_bytes")
    class NodesByKindEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: int
        def __init__(self, key: _Optional[str] = ..., value: _Optional[int] = ...) -> None: ...
    class RequestsByMethodEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: int
        def __init__(self, key: _Optional[str] = ..., value: _Optional[int] = ...) -> None: ...
    SESSIONS_FIELD_NUMBER: _ClassVar[int]
    ACTIVE_SESSIONS_FIELD_NUMBER: _ClassVar[int]
    NODES_BY_KIND_FIELD_NUMBER: _ClassVar[int]
    EDGES_FIELD_NUMBER: _ClassVar[int]
    TOKEN_USAGE_FIELD_NUMBER: _ClassVar[int]
    REQUESTS_BY_METHOD_FIELD_NUMBER: _ClassVar[int]
    STORE_SIZE_BYTES_FIELD_NUMBER: _ClassVar[int]
    sessions: int
    active_sessions: int
    nodes_by_kind: _containers.ScalarMap[str, int]
    edges: int
    token_usage: TokenUsage
    requests_by_method: _containers.ScalarMap[str, int]
    store_size_bytes: int
    def __init__(self, sessions: _Optional[int] = ..., active_sessions: _Optional[int] = ..., nodes_by_kind: _Optional[_Mapping[str, int]] = ..., edges: _Optional[int] = ..., token_usage: _Optional[_Union[TokenUsage, _Mapping]] = ..., requests_by_method: _Optional[_Mapping[str, int]] = ..., store_size_bytes: _Optional[int] = ...) -> None: ...

class IngestItem(_message.Message):
    __slots__ = ("session", "node", "prompt", "response", "tool_invocation", "edge")
    SESSION_FIELD_NUMBER: _ClassVar[int]
    NODE_FIELD_NUMBER: _ClassVar[int]
    PROMPT_FIELD_NUMBER: _ClassVar[int]
    RESPONSE_FIELD_NUMBER: _ClassVar[int]
    TOOL_INVOCATION_FIELD_NUMBER: _ClassVar[int]
    EDGE_FIELD_NUMBER: _ClassVar[int]
    session: CreateSessionRequest
    node: CreateNodeRequest
    prompt: AddPromptRequest
    response: AddResponseRequest
    tool_invocation: AddToolInvocationRequest
    edge: CreateEdgeRequest
    def __init__(self, session: _Optional[_Union[CreateSessionRequest, _Mapping]] = ..., node: _Optional[_Union[CreateNodeRequest, _Mapping]] = ..., prompt: _Optional[_Union[AddPromptRequest, _Mapping]] = ..., response: _Optional[_Union[AddResponseRequest, _Mapping]] = ..., tool_invocation: _Optional[_Union[AddToolInvocationRequest, _Mapping]] = ..., edge: _Optional[_Union[CreateEdgeRequest, _Mapping]] = ...) -> None: ...

class IngestBatch(_message.Message):
    __slots__ = ("items", "batch_id")
    ITEMS_FIELD_NUMBER: _ClassVar[int]
    BATCH_ID_FIELD_NUMBER: _ClassVar[int]
    items: _containers.RepeatedCompositeFieldContainer[IngestItem]
    batch_id: str
    def __init__(self, items: _Optional[_Iterable[_Union[IngestItem, _Mapping]]] = ..., batch_id: _Optional[str] = ...) -> None: ...

class IngestAck(_message.Message):
    __slots__ = ("batch_id", "ids", "sequence")
    BATCH_ID_FIELD_NUMBER: _ClassVar[int]
    IDS_FIELD_NUMBER: _ClassVar[int]
    SEQUENCE_FIELD_NUMBER: _ClassVar[int]
    batch_id: str
    ids: _containers.RepeatedScalarFieldContainer[str]
    sequence: int
    def __init__(self, batch_id: _Optional[str] = ..., ids: _Optional[_Iterable[str]] = ..., sequence: _Optional[int] = ...) -> None: ...

class Event(_message.Message):
    __slots__ = ("sequence", "type", "time", "session_id", "node", "edge")
    SEQUENCE_FIELD_NUMBER: _ClassVar[int]
    TYPE_FIELD_NUMBER: _ClassVar[int]
    TIME_FIELD_NUMBER: _ClassVar[int]
    SESSION_ID_FIELD_NUMBER: _ClassVar[int]
    NODE_FIELD_NUMBER: _ClassVar[int]
    EDGE_FIELD_NUMBER: _ClassVar[int]
    sequence: int
    type: EventType
    time: _timestamp_pb2.Timestamp
    session_id: str
    node: Node
    edge: Edge
    def __init__(self, sequence: _Optional[int] = ..., type: _Optional[_Union[EventType, str]] = ..., time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., session_id: _Optional[str] = ..., node: _Optional[_Union[Node, _Mapping]] = ..., edge: _Optional[_Union[Edge, _Mapping]] = ...) -> None: ...

class StreamEventsRequest(_message.Message):
    __slots__ = ("from_sequence", "session_id", "types")
    FROM_SEQUENCE_FIELD_NUMBER: _ClassVar[int]
    SESSION_ID_FIELD_NUMBER: _ClassVar[int]
    TYPES_FIELD_NUMBER: _ClassVar[int]
    from_sequence: int
    session_id: str
    types: _containers.RepeatedScalarFieldContainer[EventType]
    def __init__(self, from_sequence: _Optional[int] = ..., session_id: _Optional[str] = ..., types: _Optional[_Iterable[_Union[EventType, str]]] = ...) -> None: ...

class SubscribeToSessionRequest(_message.Message):
    __slots__ = ("session_id", "from_sequence")
    SESSION_ID_FIELD_NUMBER: _ClassVar[int]
    FROM_SEQUENCE_FIELD_NUMBER: _ClassVar[int]
    session_id: str
    from_sequence: int
    def __init__(self, session_id: _Optional[str] = ..., from_sequence: _Optional[int] = ...) -> None: ...

class ListArchiveCandidatesRequest(_message.Message):
    __slots__ = ("idle_before", "limit", "page_token")
    IDLE_BEFORE_FIELD_NUMBER: _ClassVar[int]
    LIMIT_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    idle_before: _timestamp_pb2.Timestamp
    limit: int
    page_token: str
    def __init__(self, idle_before: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., limit: _Optional[int] = ..., page_token: _Optional[str] = ...) -> None: ...

class ArchiveCandidate(_message.Message):
    __slots__ = ("session", "last_activity_time")
    SESSION_FIELD_NUMBER: _ClassVar[int]
    LAST_ACTIVITY_TIME_FIELD_NUMBER: _ClassVar[int]
    session: Session
    last_activity_time: _timestamp_pb2.Timestamp
    def __init__(self, session: _Optional[_Union[Session, _Mapping]] = ..., last_activity_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class ListArchiveCandidatesResponse(_message.Message):
    __slots__ = ("candidates", "next_page_token")
    CANDIDATES_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    candidates: _containers.RepeatedCompositeFieldContainer[ArchiveCandidate]
    next_page_token: str
    def __init__(self, candidates: _Optional[_Iterable[_Union[ArchiveCandidate, _Mapping]]] = ..., next_page_token: _Optional[str] = ...) -> None: ...

class ExportSessionRequest(_message.Message):
    __slots__ = ("session_id", "for_archive")
    SESSION_ID_FIELD_NUMBER: _ClassVar[int]
    FOR_ARCHIVE_FIELD_NUMBER: _ClassVar[int]
    session_id: str
    for_archive: bool
    def __init__(self, session_id: _Optional[str] = ..., for_archive: _Optional[bool] = ...) -> None: ...

class ExportSummary(_message.Message):
    __slots__ = ("nodes", "edges", "events", "size_bytes", "content_sha256", "format_version")
    NODES_FIELD_NUMBER: _ClassVar[int]
    EDGES_FIELD_NUMBER: _ClassVar[int]
    EVENTS_FIELD_NUMBER: _ClassVar[int]
    SIZE_BYTES_FIELD_NUMBER: _ClassVar[int]
    CONTENT_SHA256_FIELD_NUMBER: _ClassVar[int]
    FORMAT_VERSION_FIELD_NUMBER: _ClassVar[int]
    nodes: int
    edges: int
    events: int
    size_bytes: int
    content_sha256: str
    format_version: int
    def __init__(self, nodes: _Optional[int] = ..., edges: _Optional[int] = ..., events: _Optional[int] = ..., size_bytes: _Optional[int] = ..., content_sha256: _Optional[str] = ..., format_version: _Optional[int] = ...) -> None: ...

class ExportSessionChunk(_message.Message):
    __slots__ = ("data", "summary")
    DATA_FIELD_NUMBER: _ClassVar[int]
    SUMMARY_FIELD_NUMBER: _ClassVar[int]
    data: bytes
    summary: ExportSummary
    def __init__(self, data: _Optional[bytes] = ..., summary: _Optional[_Union[ExportSummary, _Mapping]] = ...) -> None: ...

class ArchiveSessionRequest(_message.Message):
    __slots__ = ("session_id", "content_sha256", "archive_id")
    SESSION_ID_FIELD_NUMBER: _ClassVar[int]
    CONTENT_SHA256_FIELD_NUMBER: _ClassVar[int]
    ARCHIVE_ID_FIELD_NUMBER: _ClassVar[int]
    session_id: str
    content_sha256: str
    archive_id: str
    def __init__(self, session_id: _Optional[str] = ..., content_sha256: _Optional[str] = ..., archive_id: _Optional[str] = ...) -> None: ...

class ArchiveSessionResponse(_message.Message):
    __slots__ = ("deleted_nodes", "deleted_edges", "erased_events")
    DELETED_NODES_FIELD_NUMBER: _ClassVar[int]
    DELETED_EDGES_FIELD_NUMBER: _ClassVar[int]
    ERASED_EVENTS_FIELD_NUMBER: _ClassVar[int]
    deleted_nodes: int
    deleted_edges: int
    erased_events: int
    def __init__(self, deleted_nodes: _Optional[int] = ..., deleted_edges: _Optional[int] = ..., erased_events: _Optional[int] = ...) -> None: ...

class RestoreSessionChunk(_message.Message):
    __slots__ = ("data",)
    DATA_FIELD_NUMBER: _ClassVar[int]
    data: bytes
    def __init__(self, data: _Optional[bytes] = ...) -> None: ...

class RestoreSessionResponse(_message.Message):
    __slots__ = ("session", "nodes", "edges", "events", "skipped_edges", "skipped_events", "already_present")
    SESSION_FIELD_NUMBER: _ClassVar[int]
    NODES_FIELD_NUMBER: _ClassVar[int]
    EDGES_FIELD_NUMBER: _ClassVar[int]
    EVENTS_FIELD_NUMBER: _ClassVar[int]
    SKIPPED_EDGES_FIELD_NUMBER: _ClassVar[int]
    SKIPPED_EVENTS_FIELD_NUMBER: _ClassVar[int]
    ALREADY_PRESENT_FIELD_NUMBER: _ClassVar[int]
    session: Session
    nodes: int
    edges: int
    events: int
    skipped_edges: int
    skipped_events: int
    already_present: bool
    def __init__(self, session: _Optional[_Union[Session, _Mapping]] = ..., nodes: _Optional[int] = ..., edges: _Optional[int] = ..., events: _Optional[int] = ..., skipped_edges: _Optional[int] = ..., skipped_events: _Optional[int] = ..., already_present: _Optional[bool] = ...) -> None: ...
