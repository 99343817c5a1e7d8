"""Python client for applications: `Client` (blocking) and `AsyncClient` (asyncio).

    from memorygraph import Client

    with Client("127.0.0.1:50051") as mg:
        session = mg.create_session(title="support chat", user_id="u-42")
        prompt = mg.add_prompt(session.id, "Where is my order?", model="gpt-4o")
        mg.add_response(prompt.id, "It ships today.", token_usage=(12, 6))
        for node in mg.iter_query(session_id=session.id):
            print(node.kind, node.content)

Methods mirror the RPCs of `memorygraph.v1.MemoryGraphService` and return its protobuf messages.
Kinds, directions and states may be given as names ("prompt", "incoming", "closed") or enum
values; times as `datetime`. gRPC failures are raised as the `memorygraph.errors` classes, with
the server's message.
"""

from __future__ import annotations

import datetime as dt
import os
from collections.abc import AsyncIterator, Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import grpc
import grpc.aio
from google.protobuf.field_mask_pb2 import FieldMask
from google.protobuf.timestamp_pb2 import Timestamp

from memorygraph.errors import ERROR_CLASSES, Code, ConfigError, InvalidArgument, RequestError
from memorygraph.v1 import graph_pb2 as pb
from memorygraph.v1.graph_pb2_grpc import MemoryGraphServiceStub

__all__ = ["AsyncClient", "Client"]

DEFAULT_TARGET = "127.0.0.1:50051"


# -- conversions (shared by both clients) ----------------------------------------------------


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


def _direction(value: str | int) -> Any:
    return _enum(pb.Direction, "DIRECTION_", value, "direction")


def _timestamp(value: dt.datetime | None) -> Timestamp | None:
    if value is None:
        return None
    if value.tzinfo is None:
        value = value.replace(tzinfo=dt.UTC)
    stamp = Timestamp()
    stamp.FromDatetime(value)
    return stamp


def _usage(value: pb.TokenUsage | tuple[int, int] | None) -> pb.TokenUsage | None:
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
        start_time=_timestamp(start_time),
        end_time=_timestamp(end_time),
        metadata=dict(metadata or {}),
        descending=descending,
    )


def _template_variable(value: pb.TemplateVariable | Mapping[str, Any]) -> pb.TemplateVariable:
    return value if isinstance(value, pb.TemplateVariable) else pb.TemplateVariable(**value)


# gRPC statuses back to the error classes, by the code names both share.
_ERRORS: dict[grpc.StatusCode, type[RequestError]] = {
    grpc.StatusCode[cls.code.name]: cls for cls in ERROR_CLASSES
}


def _error(exc: grpc.RpcError) -> RequestError:
    """The one place gRPC failures become MemoryGraph errors."""
    status = exc.code() if hasattr(exc, "code") else grpc.StatusCode.UNKNOWN
    details = exc.details() if hasattr(exc, "details") else str(exc)
    error = _ERRORS.get(status, RequestError)(details or status.name)
    error.code = Code[status.name]
    return error


Pem = bytes | str | Path


def _pem(value: Pem) -> bytes:
    """PEM given as bytes, as text, or as the path of a file holding it."""
    if isinstance(value, Path) or (isinstance(value, str) and not value.startswith("-----")):
        try:
            return Path(value).read_bytes()
        except OSError as exc:
            raise ConfigError(f"cannot read {value}: {exc.strerror}") from None
    return value.encode() if isinstance(value, str) else value


def _credentials(
    root_certificates: Pem | None, client_cert: Pem | None, client_key: Pem | None
) -> grpc.ChannelCredentials | None:
    """TLS credentials when a CA or a client certificate is given; None means plaintext."""
    if (client_cert is None) != (client_key is None):
        raise ConfigError("a client certificate needs its key, and a key its certificate")
    if root_certificates is None and client_cert is None:
        return None
    return grpc.ssl_channel_credentials(
        root_certificates=_pem(root_certificates) if root_certificates is not None else None,
        private_key=_pem(client_key) if client_key is not None else None,
        certificate_chain=_pem(client_cert) if client_cert is not None else None,
    )


class _Base:
    """Requests are built here once for both clients."""

    def __init__(self, api_key: str | None, timeout: float | None) -> None:
        key = api_key if api_key is not None else os.environ.get("MEMORYGRAPH_API_KEY")
        self.metadata: tuple[tuple[str, str], ...] = (
            (("authorization", f"Bearer {key}"),) if key else ()
        )
        self.timeout = timeout

    @staticmethod
    def _candidates(idle_before: dt.datetime, page_size: int, token: str) -> Any:
        return pb.ListArchiveCandidatesRequest(
            idle_before=_timestamp(idle_before), limit=page_size, page_token=token
        )

    @staticmethod
    def _export_result(
        chunks: list[pb.ExportSessionChunk],
    ) -> tuple[bytes, pb.ExportSummary]:
        summaries = [c.summary for c in chunks if c.HasField("summary")]
        if not summaries:
            raise RequestError("the export stream ended without its summary")
        return b"".join(c.data for c in chunks if not c.HasField("summary")), summaries[-1]

    def _transfer_timeout(self, size: int) -> float | None:
        """The per-call timeout, plus a second per MiB for calls that carry a whole export."""
        return None if self.timeout is None else self.timeout + size / (1 << 20)

    @staticmethod
    def _restore_chunks(export: bytes) -> list[pb.RestoreSessionChunk]:
        step = 1 << 20
        return [
            pb.RestoreSessionChunk(data=export[i : i + step])
            for i in range(0, max(len(export), 1), step)
        ]

    @staticmethod
    def _create_session(**fields: Any) -> pb.CreateSessionRequest:
        fields["metadata"] = dict(fields.get("metadata") or {})
        return pb.CreateSessionRequest(**fields)

    @staticmethod
    def _list_sessions(
        limit: int, page_token: str, state: str | int | None, user_id: str
    ) -> pb.ListSessionsRequest:
        return pb.ListSessionsRequest(
            limit=limit,
            page_token=page_token,
            state=_enum(pb.SessionState, "SESSION_STATE_", state or 0, "state"),
            user_id=user_id,
        )

    @staticmethod
    def _create_node(
        kind: str | int,
        session_id: str,
        content: str,
        metadata: Mapping[str, str] | None,
        node_id: str,
        details: Any,
    ) -> pb.CreateNodeRequest:
        request = pb.CreateNodeRequest(
            node_id=node_id,
            kind=node_kind(kind),
            session_id=session_id,
            content=content,
            metadata=dict(metadata or {}),
        )
        if details is not None:
            field = {
                pb.PromptDetails: "prompt",
                pb.ResponseDetails: "response",
                pb.ToolInvocationDetails: "tool_invocation",
                pb.AgentDetails: "agent",
            }[type(details)]
            getattr(request, field).CopyFrom(details)
        return request

    @staticmethod
    def _update_node(
        node_id: str, content: str | None, metadata: Mapping[str, str] | None
    ) -> pb.UpdateNodeRequest:
        paths = [p for p, v in (("content", content), ("metadata", metadata)) if v is not None]
        if not paths:
            raise InvalidArgument("give content and/or metadata to update")
        return pb.UpdateNodeRequest(
            node_id=node_id,
            content=content or "",
            metadata=dict(metadata or {}),
            update_mask=FieldMask(paths=paths),
        )

    @staticmethod
    def _response(
        prompt_id: str, content: str, token_usage: Any, **fields: Any
    ) -> pb.AddResponseRequest:
        fields["metadata"] = dict(fields.get("metadata") or {})
        return pb.AddResponseRequest(
            prompt_id=prompt_id, content=content, token_usage=_usage(token_usage), **fields
        )

    @staticmethod
    def _tool(
        response_id: str, tool_name: str, status: str | int | None, **fields: Any
    ) -> pb.AddToolInvocationRequest:
        fields["metadata"] = dict(fields.get("metadata") or {})
        return pb.AddToolInvocationRequest(
            response_id=response_id,
            tool_name=tool_name,
            status=_enum(pb.ToolStatus, "TOOL_STATUS_", status or 0, "tool status"),
            **fields,
        )

    @staticmethod
    def _instantiate(
        template_id: str, name: str, variables: Mapping[str, str] | None, **fields: Any
    ) -> pb.InstantiateTemplateRequest:
        fields["metadata"] = dict(fields.get("metadata") or {})
        request = pb.InstantiateTemplateRequest(variables=dict(variables or {}), **fields)
        if template_id:
            request.template_id = template_id
        else:
            request.name = name
        return request


class Client(_Base):
    """Blocking client. Use as a context manager, or call `close()`."""

    def __init__(
        self,
        target: str = DEFAULT_TARGET,
        *,
        api_key: str | None = None,
        timeout: float | None = 30.0,
        root_certificates: Pem | None = None,
        client_cert: Pem | None = None,
        client_key: Pem | None = None,
    ) -> None:
        """`root_certificates`: the CA to verify a TLS server with (system roots when only a
        client certificate is given); `client_cert` and `client_key` for mutual TLS."""
        super().__init__(api_key, timeout)
        credentials = _credentials(root_certificates, client_cert, client_key)
        self.channel = (
            grpc.secure_channel(target, credentials)
            if credentials is not None
            else grpc.insecure_channel(target)
        )
        self.stub = MemoryGraphServiceStub(self.channel)

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self.channel.close()

    def _call(self, method: Any, request: Any) -> Any:
        try:
            return method(request, timeout=self.timeout, metadata=self.metadata)
        except grpc.RpcError as exc:
            raise _error(exc) from None

    def _stream(self, method: Any, request: Any) -> Iterator[Any]:
        try:
            yield from method(request, metadata=self.metadata)
        except grpc.RpcError as exc:
            raise _error(exc) from None

    # sessions
    def create_session(self, **fields: Any) -> pb.Session:
        """Fields: title, user_id, agent_id, model, metadata, session_id."""
        return self._call(self.stub.CreateSession, self._create_session(**fields))

    def get_session(self, session_id: str) -> pb.Session:
        return self._call(self.stub.GetSession, pb.GetSessionRequest(session_id=session_id))

    def close_session(self, session_id: str) -> pb.Session:
        return self._call(self.stub.CloseSession, pb.CloseSessionRequest(session_id=session_id))

    def delete_session(self, session_id: str) -> pb.DeleteSessionResponse:
        request = pb.DeleteSessionRequest(session_id=session_id)
        return self._call(self.stub.DeleteSession, request)

    def list_sessions(
        self,
        *,
        limit: int = 0,
        page_token: str = "",
        state: str | int | None = None,
        user_id: str = "",
    ) -> pb.ListSessionsResponse:
        request = self._list_sessions(limit, page_token, state, user_id)
        return self._call(self.stub.ListSessions, request)

    def iter_sessions(self, **filters: Any) -> Iterator[pb.Session]:
        """Every session (newest first), following pages."""
        token = ""
        while True:
            page = self.list_sessions(page_token=token, **filters)
            yield from page.sessions
            token = page.next_page_token
            if not token:
                return

    # nodes
    def create_node(
        self,
        kind: str | int,
        *,
        session_id: str = "",
        content: str = "",
        metadata: Mapping[str, str] | None = None,
        node_id: str = "",
        details: Any = None,
    ) -> pb.Node:
        request = self._create_node(kind, session_id, content, metadata, node_id, details)
        return self._call(self.stub.CreateNode, request)

    def get_node(self, node_id: str) -> pb.Node:
        return self._call(self.stub.GetNode, pb.GetNodeRequest(node_id=node_id))

    def update_node(
        self,
        node_id: str,
        *,
        content: str | None = None,
        metadata: Mapping[str, str] | None = None,
    ) -> pb.Node:
        request = self._update_node(node_id, content, metadata)
        return self._call(self.stub.UpdateNode, request)

    def delete_node(self, node_id: str) -> pb.DeleteNodeResponse:
        return self._call(self.stub.DeleteNode, pb.DeleteNodeRequest(node_id=node_id))

    def batch_create_nodes(
        self, requests: Iterable[pb.CreateNodeRequest]
    ) -> pb.BatchCreateNodesResponse:
        request = pb.BatchCreateNodesRequest(requests=list(requests))
        return self._call(self.stub.BatchCreateNodes, request)

    def batch_get_nodes(self, node_ids: Iterable[str]) -> pb.BatchGetNodesResponse:
        request = pb.BatchGetNodesRequest(node_ids=list(node_ids))
        return self._call(self.stub.BatchGetNodes, request)

    # edges
    def create_edge(
        self,
        source_id: str,
        target_id: str,
        kind: str | int,
        *,
        metadata: Mapping[str, str] | None = None,
    ) -> pb.Edge:
        request = pb.CreateEdgeRequest(
            source_id=source_id,
            target_id=target_id,
            kind=edge_kind(kind),
            metadata=dict(metadata or {}),
        )
        return self._call(self.stub.CreateEdge, request)

    def get_edges(
        self, node_id: str, *, direction: str | int = "outgoing", kinds: Sequence[str | int] = ()
    ) -> list[pb.Edge]:
        request = pb.GetEdgesRequest(
            node_id=node_id, direction=_direction(direction), kinds=[edge_kind(k) for k in kinds]
        )
        return list(self._call(self.stub.GetEdges, request).edges)

    def delete_edge(self, source_id: str, target_id: str, kind: str | int) -> None:
        request = pb.DeleteEdgeRequest(
            source_id=source_id, target_id=target_id, kind=edge_kind(kind)
        )
        self._call(self.stub.DeleteEdge, request)

    # queries
    def query(self, *, limit: int = 0, page_token: str = "", **filters: Any) -> pb.QueryResponse:
        """Filters: session_id, kinds, start_time, end_time, metadata, descending."""
        request = pb.QueryRequest(
            filter=query_filter(**filters), limit=limit, page_token=page_token
        )
        return self._call(self.stub.Query, request)

    def iter_query(self, **filters: Any) -> Iterator[pb.Node]:
        """Every matching node, following pages."""
        token = ""
        while True:
            page = self.query(page_token=token, **filters)
            yield from page.nodes
            token = page.next_page_token
            if not token:
                return

    def stream_query(
        self, *, batch_size: int = 0, limit: int = 0, **filters: Any
    ) -> Iterator[pb.Node]:
        """Every matching node over one server stream."""
        request = pb.StreamQueryRequest(
            filter=query_filter(**filters), batch_size=batch_size, limit=limit
        )
        for batch in self._stream(self.stub.StreamQuery, request):
            yield from batch.nodes

    def traverse(
        self,
        start_node_id: str,
        *,
        edge_kinds: Sequence[str | int] = (),
        direction: str | int = "outgoing",
        max_depth: int = 0,
        max_nodes: int = 0,
    ) -> pb.TraverseResponse:
        request = pb.TraverseRequest(
            start_node_id=start_node_id,
            edge_kinds=[edge_kind(k) for k in edge_kinds],
            direction=_direction(direction),
            max_depth=max_depth,
            max_nodes=max_nodes,
        )
        return self._call(self.stub.Traverse, request)

    # LLM turns
    def add_prompt(self, session_id: str, content: str, **fields: Any) -> pb.Node:
        """Fields: model, role, metadata."""
        fields["metadata"] = dict(fields.get("metadata") or {})
        request = pb.AddPromptRequest(session_id=session_id, content=content, **fields)
        return self._call(self.stub.AddPrompt, request)

    def add_response(
        self,
        prompt_id: str,
        content: str,
        *,
        token_usage: pb.TokenUsage | tuple[int, int] | None = None,
        **fields: Any,
    ) -> pb.Node:
        """`token_usage` as (prompt_tokens, completion_tokens). Fields: model, finish_reason,
        latency_ms, metadata."""
        request = self._response(prompt_id, content, token_usage, **fields)
        return self._call(self.stub.AddResponse, request)

    def add_tool_invocation(
        self, response_id: str, tool_name: str, *, status: str | int | None = None, **fields: Any
    ) -> pb.Node:
        """`status`: "succeeded" or "failed". Fields: arguments, result, duration_ms, metadata."""
        request = self._tool(response_id, tool_name, status, **fields)
        return self._call(self.stub.AddToolInvocation, request)

    # templates
    def create_template(
        self,
        name: str,
        content: str,
        *,
        variables: Iterable[pb.TemplateVariable | Mapping[str, Any]] = (),
        metadata: Mapping[str, str] | None = None,
        template_id: str = "",
    ) -> pb.Template:
        request = pb.CreateTemplateRequest(
            template_id=template_id,
            name=name,
            content=content,
            variables=[_template_variable(v) for v in variables],
            metadata=dict(metadata or {}),
        )
        return self._call(self.stub.CreateTemplate, request)

    def get_template(self, *, template_id: str = "", name: str = "") -> pb.Template:
        request = (
            pb.GetTemplateRequest(template_id=template_id)
            if template_id
            else pb.GetTemplateRequest(name=name)
        )
        return self._call(self.stub.GetTemplate, request)

    def instantiate_template(
        self,
        *,
        template_id: str = "",
        name: str = "",
        variables: Mapping[str, str] | None = None,
        **fields: Any,
    ) -> pb.InstantiateTemplateResponse:
        """Fields: session_id (records the text as a prompt there), model, role, metadata."""
        request = self._instantiate(template_id, name, variables, **fields)
        return self._call(self.stub.InstantiateTemplate, request)

    # bulk loading and events
    def ingest(self, batches: Iterable[pb.IngestBatch]) -> Iterator[pb.IngestAck]:
        """Send batches over one stream; yields each batch's acknowledgement."""
        try:
            yield from self.stub.Ingest(iter(batches), metadata=self.metadata)
        except grpc.RpcError as exc:
            raise _error(exc) from None

    def stream_events(
        self,
        *,
        from_sequence: int = 0,
        session_id: str = "",
        types: Sequence[str | int] = (),
    ) -> Iterator[pb.Event]:
        """Retained events from `from_sequence` (0: only new ones), then live ones."""
        request = pb.StreamEventsRequest(
            from_sequence=from_sequence,
            session_id=session_id,
            types=[event_type(t) for t in types],
        )
        return self._stream(self.stub.StreamEvents, request)

    def subscribe_to_session(
        self, session_id: str, *, from_sequence: int = 0
    ) -> Iterator[pb.Event]:
        request = pb.SubscribeToSessionRequest(session_id=session_id, from_sequence=from_sequence)
        return self._stream(self.stub.SubscribeToSession, request)

    # archival
    def iter_archive_candidates(
        self, idle_before: dt.datetime, *, page_size: int = 0
    ) -> Iterator[pb.ArchiveCandidate]:
        """Every session closed, or idle, since before `idle_before`, oldest first."""
        token = ""
        while True:
            request = self._candidates(idle_before, page_size, token)
            page = self._call(self.stub.ListArchiveCandidates, request)
            yield from page.candidates
            token = page.next_page_token
            if not token:
                return

    def export_session(
        self, session_id: str, *, for_archive: bool = False
    ) -> tuple[bytes, pb.ExportSummary]:
        """The session's canonical export and its summary (counts, SHA-256)."""
        request = pb.ExportSessionRequest(session_id=session_id, for_archive=for_archive)
        return self._export_result(list(self._stream(self.stub.ExportSession, request)))

    def archive_session(
        self, session_id: str, content_sha256: str, *, archive_id: str = ""
    ) -> pb.ArchiveSessionResponse:
        """Remove an archived session while it still exports to `content_sha256`."""
        request = pb.ArchiveSessionRequest(
            session_id=session_id, content_sha256=content_sha256, archive_id=archive_id
        )
        return self._call(self.stub.ArchiveSession, request)

    def restore_session(self, export: bytes) -> pb.RestoreSessionResponse:
        """Write an exported session back (idempotent)."""
        try:
            return self.stub.RestoreSession(
                iter(self._restore_chunks(export)),
                timeout=self._transfer_timeout(len(export)),
                metadata=self.metadata,
            )
        except grpc.RpcError as exc:
            raise _error(exc) from None

    # operations
    def health(self) -> pb.HealthResponse:
        return self._call(self.stub.Health, pb.HealthRequest())

    def get_metrics(self) -> pb.GetMetricsResponse:
        return self._call(self.stub.GetMetrics, pb.GetMetricsRequest())


class AsyncClient(_Base):
    """asyncio client with the same methods as `Client`, as coroutines and async iterators."""

    def __init__(
        self,
        target: str = DEFAULT_TARGET,
        *,
        api_key: str | None = None,
        timeout: float | None = 30.0,
        root_certificates: Pem | None = None,
        client_cert: Pem | None = None,
        client_key: Pem | None = None,
    ) -> None:
        """`root_certificates`: the CA to verify a TLS server with (system roots when only a
        client certificate is given); `client_cert` and `client_key` for mutual TLS."""
        super().__init__(api_key, timeout)
        credentials = _credentials(root_certificates, client_cert, client_key)
        self.channel = (
            grpc.aio.secure_channel(target, credentials)
            if credentials is not None
            else grpc.aio.insecure_channel(target)
        )
        self.stub = MemoryGraphServiceStub(self.channel)

    async def __aenter__(self) -> AsyncClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def close(self) -> None:
        await self.channel.close()

    async def _call(self, method: Any, request: Any) -> Any:
        try:
            return await method(request, timeout=self.timeout, metadata=self.metadata)
        except grpc.RpcError as exc:
            raise _error(exc) from None

    async def _stream(self, method: Any, request: Any) -> AsyncIterator[Any]:
        try:
            async for item in method(request, metadata=self.metadata):
                yield item
        except grpc.RpcError as exc:
            raise _error(exc) from None

    async def create_session(self, **fields: Any) -> pb.Session:
        return await self._call(self.stub.CreateSession, self._create_session(**fields))

    async def get_session(self, session_id: str) -> pb.Session:
        request = pb.GetSessionRequest(session_id=session_id)
        return await self._call(self.stub.GetSession, request)

    async def close_session(self, session_id: str) -> pb.Session:
        request = pb.CloseSessionRequest(session_id=session_id)
        return await self._call(self.stub.CloseSession, request)

    async def delete_session(self, session_id: str) -> pb.DeleteSessionResponse:
        request = pb.DeleteSessionRequest(session_id=session_id)
        return await self._call(self.stub.DeleteSession, request)

    async def list_sessions(
        self,
        *,
        limit: int = 0,
        page_token: str = "",
        state: str | int | None = None,
        user_id: str = "",
    ) -> pb.ListSessionsResponse:
        request = self._list_sessions(limit, page_token, state, user_id)
        return await self._call(self.stub.ListSessions, request)

    async def create_node(
        self,
        kind: str | int,
        *,
        session_id: str = "",
        content: str = "",
        metadata: Mapping[str, str] | None = None,
        node_id: str = "",
        details: Any = None,
    ) -> pb.Node:
        request = self._create_node(kind, session_id, content, metadata, node_id, details)
        return await self._call(self.stub.CreateNode, request)

    async def get_node(self, node_id: str) -> pb.Node:
        return await self._call(self.stub.GetNode, pb.GetNodeRequest(node_id=node_id))

    async def update_node(
        self,
        node_id: str,
        *,
        content: str | None = None,
        metadata: Mapping[str, str] | None = None,
    ) -> pb.Node:
        request = self._update_node(node_id, content, metadata)
        return await self._call(self.stub.UpdateNode, request)

    async def delete_node(self, node_id: str) -> pb.DeleteNodeResponse:
        request = pb.DeleteNodeRequest(node_id=node_id)
        return await self._call(self.stub.DeleteNode, request)

    async def create_edge(
        self,
        source_id: str,
        target_id: str,
        kind: str | int,
        *,
        metadata: Mapping[str, str] | None = None,
    ) -> pb.Edge:
        request = pb.CreateEdgeRequest(
            source_id=source_id,
            target_id=target_id,
            kind=edge_kind(kind),
            metadata=dict(metadata or {}),
        )
        return await self._call(self.stub.CreateEdge, request)

    async def get_edges(
        self, node_id: str, *, direction: str | int = "outgoing", kinds: Sequence[str | int] = ()
    ) -> list[pb.Edge]:
        request = pb.GetEdgesRequest(
            node_id=node_id, direction=_direction(direction), kinds=[edge_kind(k) for k in kinds]
        )
        return list((await self._call(self.stub.GetEdges, request)).edges)

    async def query(
        self, *, limit: int = 0, page_token: str = "", **filters: Any
    ) -> pb.QueryResponse:
        request = pb.QueryRequest(
            filter=query_filter(**filters), limit=limit, page_token=page_token
        )
        return await self._call(self.stub.Query, request)

    async def stream_query(
        self, *, batch_size: int = 0, limit: int = 0, **filters: Any
    ) -> AsyncIterator[pb.Node]:
        request = pb.StreamQueryRequest(
            filter=query_filter(**filters), batch_size=batch_size, limit=limit
        )
        async for batch in self._stream(self.stub.StreamQuery, request):
            for node in batch.nodes:
                yield node

    async def add_prompt(self, session_id: str, content: str, **fields: Any) -> pb.Node:
        fields["metadata"] = dict(fields.get("metadata") or {})
        request = pb.AddPromptRequest(session_id=session_id, content=content, **fields)
        return await self._call(self.stub.AddPrompt, request)

    async def add_response(
        self,
        prompt_id: str,
        content: str,
        *,
        token_usage: pb.TokenUsage | tuple[int, int] | None = None,
        **fields: Any,
    ) -> pb.Node:
        request = self._response(prompt_id, content, token_usage, **fields)
        return await self._call(self.stub.AddResponse, request)

    async def add_tool_invocation(
        self, response_id: str, tool_name: str, *, status: str | int | None = None, **fields: Any
    ) -> pb.Node:
        request = self._tool(response_id, tool_name, status, **fields)
        return await self._call(self.stub.AddToolInvocation, request)

    async def instantiate_template(
        self,
        *,
        template_id: str = "",
        name: str = "",
        variables: Mapping[str, str] | None = None,
        **fields: Any,
    ) -> pb.InstantiateTemplateResponse:
        request = self._instantiate(template_id, name, variables, **fields)
        return await self._call(self.stub.InstantiateTemplate, request)

    async def stream_events(
        self,
        *,
        from_sequence: int = 0,
        session_id: str = "",
        types: Sequence[str | int] = (),
    ) -> AsyncIterator[pb.Event]:
        request = pb.StreamEventsRequest(
            from_sequence=from_sequence,
            session_id=session_id,
            types=[event_type(t) for t in types],
        )
        async for event in self._stream(self.stub.StreamEvents, request):
            yield event

    async def iter_archive_candidates(
        self, idle_before: dt.datetime, *, page_size: int = 0
    ) -> AsyncIterator[pb.ArchiveCandidate]:
        token = ""
        while True:
            request = self._candidates(idle_before, page_size, token)
            page = await self._call(self.stub.ListArchiveCandidates, request)
            for candidate in page.candidates:
                yield candidate
            token = page.next_page_token
            if not token:
                return

    async def export_session(
        self, session_id: str, *, for_archive: bool = False
    ) -> tuple[bytes, pb.ExportSummary]:
        request = pb.ExportSessionRequest(session_id=session_id, for_archive=for_archive)
        chunks = [c async for c in self._stream(self.stub.ExportSession, request)]
        return self._export_result(chunks)

    async def archive_session(
        self, session_id: str, content_sha256: str, *, archive_id: str = ""
    ) -> pb.ArchiveSessionResponse:
        request = pb.ArchiveSessionRequest(
            session_id=session_id, content_sha256=content_sha256, archive_id=archive_id
        )
        return await self._call(self.stub.ArchiveSession, request)

    async def restore_session(self, export: bytes) -> pb.RestoreSessionResponse:
        try:
            return await self.stub.RestoreSession(
                iter(self._restore_chunks(export)),
                timeout=self._transfer_timeout(len(export)),
                metadata=self.metadata,
            )
        except grpc.RpcError as exc:
            raise _error(exc) from None

    async def health(self) -> pb.HealthResponse:
        return await self._call(self.stub.Health, pb.HealthRequest())

    async def get_metrics(self) -> pb.GetMetricsResponse:
        return await self._call(self.stub.GetMetrics, pb.GetMetricsRequest())
