"""What both clients share: their settings and every request they send, built once.

`Client` and `AsyncClient` are twins over this base (as httpx's are): a public method builds its
request here and only sends it — blocking, or awaited. A change to what a call sends, or to how
a client is set up, is made here, for both. Building requests does no I/O.
"""

from __future__ import annotations

import datetime as dt
import threading
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

import grpc
from google.protobuf.field_mask_pb2 import FieldMask

from memorygraph.client import _fields as f
from memorygraph.client._connection import (
    DEFAULT_MAX_RECEIVE_BYTES,
    DEFAULT_TARGET,
    Pem,
    auth_metadata,
    credentials,
    tls_name,
)
from memorygraph.client._routing import Routes
from memorygraph.errors import InvalidArgument, RequestError
from memorygraph.v1 import graph_pb2 as pb
from memorygraph.v1.graph_pb2_grpc import MemoryGraphServiceStub

__all__ = ["BaseClient"]

# Exports travel in pieces of this size.
_CHUNK = 1 << 20
# The longest a fetch of the shard map may take.
_MAP_SECONDS = 5.0

# The node kinds whose details `create_node` accepts, by their message type.
_DETAILS_FIELD = {
    pb.PromptDetails: "prompt",
    pb.ResponseDetails: "response",
    pb.ToolInvocationDetails: "tool_invocation",
    pb.AgentDetails: "agent",
}


class BaseClient:
    """Settings and request building for `Client` and `AsyncClient`."""

    # Each twin opens its kind of channel (blocking or asyncio) from a target, credentials,
    # the largest response taken and the name a TLS server's certificate is checked against.
    _open_channel: Callable[[str, grpc.ChannelCredentials | None, int, str | None], Any]
    channel: Any

    def __init__(
        self,
        target: str = DEFAULT_TARGET,
        *,
        api_key: str | None = None,
        timeout: float | None = 30.0,
        root_certificates: Pem | None = None,
        client_cert: Pem | None = None,
        client_key: Pem | None = None,
        max_receive_bytes: int = DEFAULT_MAX_RECEIVE_BYTES,
        route: bool = True,
    ) -> None:
        """`api_key` (default: MEMORYGRAPH_API_KEY) is sent as a bearer token; `timeout` is in
        seconds per call (streams run without one). `root_certificates`: the CA to verify a TLS
        server with (system roots when only a client certificate is given); `client_cert` and
        `client_key` for mutual TLS. Certificates and keys are PEM bytes or text, or the path of
        a file holding them. `max_receive_bytes` is the largest response taken: at least the
        server's `max_message_bytes`, which bounds every page it sends.

        With `route` (the default), calls about one session, node or template go straight to
        the worker that owns its shard, as the graph's shard map says; the others, and every
        call to a server of one process, go to `target` (see `client._routing`). Over TLS,
        each worker's certificate is checked against `target`'s host name."""
        self.metadata = auth_metadata(api_key)
        self.timeout = timeout
        self._credentials = credentials(root_certificates, client_cert, client_key)
        self._max_receive_bytes = max_receive_bytes
        self._tls_name = tls_name(target) if self._credentials is not None else None
        self.channel = self._open_channel(target, self._credentials, max_receive_bytes, None)
        self.stub = MemoryGraphServiceStub(self.channel)
        self.routes = Routes(enabled=route)
        self._workers: dict[str, Any] = {}  # a worker's address -> its channel and stub
        self._workers_lock = threading.Lock()

    def _open_worker(self, address: str) -> tuple[Any, MemoryGraphServiceStub]:
        """A channel to a worker's own address, and its stub."""
        channel = self._open_channel(
            address, self._credentials, self._max_receive_bytes, self._tls_name
        )
        return channel, MemoryGraphServiceStub(channel)

    def _map_timeout(self) -> float:
        """How long a fetch of the shard map may take before calls go on without it."""
        return min(self.timeout or _MAP_SECONDS, _MAP_SECONDS)

    def _timeout(self, carrying: int = 0) -> float | None:
        """The per-call timeout, plus a second per MiB for calls that carry a whole export."""
        return None if self.timeout is None else self.timeout + carrying / (1 << 20)

    # -- sessions ---------------------------------------------------------------------------

    @staticmethod
    def _create_session_request(**fields: Any) -> pb.CreateSessionRequest:
        fields["metadata"] = dict(fields.get("metadata") or {})
        return pb.CreateSessionRequest(**fields)

    @staticmethod
    def _list_sessions_request(
        limit: int, page_token: str, state: str | int | None, user_id: str
    ) -> pb.ListSessionsRequest:
        return pb.ListSessionsRequest(
            limit=limit, page_token=page_token, state=f.session_state(state), user_id=user_id
        )

    # -- nodes ------------------------------------------------------------------------------

    @staticmethod
    def _create_node_request(
        kind: str | int,
        session_id: str,
        content: str,
        metadata: Mapping[str, str] | None,
        node_id: str,
        details: Any,
    ) -> pb.CreateNodeRequest:
        request = pb.CreateNodeRequest(
            node_id=node_id,
            kind=f.node_kind(kind),
            session_id=session_id,
            content=content,
            metadata=dict(metadata or {}),
        )
        if details is not None:
            getattr(request, _DETAILS_FIELD[type(details)]).CopyFrom(details)
        return request

    @staticmethod
    def _update_node_request(
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

    # -- edges ------------------------------------------------------------------------------

    @staticmethod
    def _create_edge_request(
        source_id: str, target_id: str, kind: str | int, metadata: Mapping[str, str] | None
    ) -> pb.CreateEdgeRequest:
        return pb.CreateEdgeRequest(
            source_id=source_id,
            target_id=target_id,
            kind=f.edge_kind(kind),
            metadata=dict(metadata or {}),
        )

    @staticmethod
    def _get_edges_request(
        node_id: str, direction: str | int, kinds: Sequence[str | int]
    ) -> pb.GetEdgesRequest:
        return pb.GetEdgesRequest(
            node_id=node_id, direction=f.direction(direction), kinds=[f.edge_kind(k) for k in kinds]
        )

    @staticmethod
    def _delete_edge_request(
        source_id: str, target_id: str, kind: str | int
    ) -> pb.DeleteEdgeRequest:
        return pb.DeleteEdgeRequest(
            source_id=source_id, target_id=target_id, kind=f.edge_kind(kind)
        )

    # -- queries ----------------------------------------------------------------------------

    @staticmethod
    def _query_request(limit: int, page_token: str, **filters: Any) -> pb.QueryRequest:
        return pb.QueryRequest(filter=f.query_filter(**filters), limit=limit, page_token=page_token)

    @staticmethod
    def _stream_query_request(batch_size: int, limit: int, **filters: Any) -> pb.StreamQueryRequest:
        return pb.StreamQueryRequest(
            filter=f.query_filter(**filters), batch_size=batch_size, limit=limit
        )

    @staticmethod
    def _traverse_request(
        start_node_id: str,
        edge_kinds: Sequence[str | int],
        direction: str | int,
        max_depth: int,
        max_nodes: int,
    ) -> pb.TraverseRequest:
        return pb.TraverseRequest(
            start_node_id=start_node_id,
            edge_kinds=[f.edge_kind(k) for k in edge_kinds],
            direction=f.direction(direction),
            max_depth=max_depth,
            max_nodes=max_nodes,
        )

    # -- LLM turns --------------------------------------------------------------------------

    @staticmethod
    def _add_prompt_request(session_id: str, content: str, **fields: Any) -> pb.AddPromptRequest:
        fields["metadata"] = dict(fields.get("metadata") or {})
        return pb.AddPromptRequest(session_id=session_id, content=content, **fields)

    @staticmethod
    def _add_response_request(
        prompt_id: str, content: str, token_usage: Any, **fields: Any
    ) -> pb.AddResponseRequest:
        fields["metadata"] = dict(fields.get("metadata") or {})
        return pb.AddResponseRequest(
            prompt_id=prompt_id, content=content, token_usage=f.token_usage(token_usage), **fields
        )

    @staticmethod
    def _add_tool_invocation_request(
        response_id: str, tool_name: str, status: str | int | None, **fields: Any
    ) -> pb.AddToolInvocationRequest:
        fields["metadata"] = dict(fields.get("metadata") or {})
        return pb.AddToolInvocationRequest(
            response_id=response_id, tool_name=tool_name, status=f.tool_status(status), **fields
        )

    @classmethod
    def _record_turn_request(
        cls,
        session_id: str,
        prompt: str,
        response: str,
        *,
        model: str,
        token_usage: Any,
        tool_invocations: Iterable[pb.AddToolInvocationRequest | Mapping[str, Any]],
        prompt_fields: Mapping[str, Any] | None,
        response_fields: Mapping[str, Any] | None,
    ) -> pb.RecordTurnRequest:
        if isinstance(tool_invocations, (Mapping, pb.AddToolInvocationRequest)):
            raise TypeError("tool_invocations: a list of tool invocations, not a single one")
        tools = []
        for tool in tool_invocations:
            if not isinstance(tool, pb.AddToolInvocationRequest):
                fields = dict(tool)
                name, status = fields.pop("tool_name", ""), fields.pop("status", None)
                tool = cls._add_tool_invocation_request("", name, status, **fields)
            tools.append(tool)
        return pb.RecordTurnRequest(
            prompt=cls._add_prompt_request(
                session_id, prompt, **{"model": model, **(prompt_fields or {})}
            ),
            response=cls._add_response_request(
                "", response, token_usage, **{"model": model, **(response_fields or {})}
            ),
            tool_invocations=tools,
        )

    # -- templates --------------------------------------------------------------------------

    @staticmethod
    def _create_template_request(
        name: str,
        content: str,
        variables: Iterable[pb.TemplateVariable | Mapping[str, Any]],
        metadata: Mapping[str, str] | None,
        template_id: str,
    ) -> pb.CreateTemplateRequest:
        return pb.CreateTemplateRequest(
            template_id=template_id,
            name=name,
            content=content,
            variables=[f.template_variable(v) for v in variables],
            metadata=dict(metadata or {}),
        )

    @staticmethod
    def _get_template_request(template_id: str, name: str) -> pb.GetTemplateRequest:
        if template_id:
            return pb.GetTemplateRequest(template_id=template_id)
        return pb.GetTemplateRequest(name=name)

    @staticmethod
    def _instantiate_template_request(
        template_id: str, name: str, variables: Mapping[str, str] | None, **fields: Any
    ) -> pb.InstantiateTemplateRequest:
        fields["metadata"] = dict(fields.get("metadata") or {})
        request = pb.InstantiateTemplateRequest(variables=dict(variables or {}), **fields)
        if template_id:
            request.template_id = template_id
        else:
            request.name = name
        return request

    # -- events -----------------------------------------------------------------------------

    @staticmethod
    def _stream_events_request(
        from_sequence: int, session_id: str, types: Sequence[str | int]
    ) -> pb.StreamEventsRequest:
        return pb.StreamEventsRequest(
            from_sequence=from_sequence,
            session_id=session_id,
            types=[f.event_type(t) for t in types],
        )

    # -- archival ---------------------------------------------------------------------------

    @staticmethod
    def _archive_candidates_request(
        idle_before: dt.datetime, page_size: int, token: str
    ) -> pb.ListArchiveCandidatesRequest:
        return pb.ListArchiveCandidatesRequest(
            idle_before=f.timestamp(idle_before), limit=page_size, page_token=token
        )

    @staticmethod
    def _export_result(chunks: list[pb.ExportSessionChunk]) -> tuple[bytes, pb.ExportSummary]:
        """The export's bytes and its summary, from the chunks of an ExportSession stream."""
        summaries = [c.summary for c in chunks if c.HasField("summary")]
        if not summaries:
            raise RequestError("the export stream ended without its summary")
        return b"".join(c.data for c in chunks if not c.HasField("summary")), summaries[-1]

    @staticmethod
    def _restore_chunks(export: bytes) -> list[pb.RestoreSessionChunk]:
        return [
            pb.RestoreSessionChunk(data=export[i : i + _CHUNK])
            for i in range(0, max(len(export), 1), _CHUNK)
        ]
