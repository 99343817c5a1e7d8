"""`Client`: the blocking client.

Each method builds its request with the shared base and sends it; `AsyncClient` is its asyncio
twin with the same methods and parameters (a test holds them in step).
"""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from typing import Any

import grpc

from memorygraph.client._base import BaseClient
from memorygraph.client._connection import open_channel
from memorygraph.client._errors import translate
from memorygraph.client._routing import ATTEMPTS
from memorygraph.errors import WrongOwner
from memorygraph.v1 import graph_pb2 as pb

__all__ = ["Client"]


class _Worker:
    """A channel to one worker's own address, watched: used only while connected. A channel
    that is not (idle after a while unused, or after its worker went away) is asked to
    connect again, with a health call at most once a second, and calls go to the graph's
    address meanwhile."""

    def __init__(self, channel: grpc.Channel, stub: Any, metadata: Any) -> None:
        self.channel, self.stub, self.metadata = channel, stub, metadata
        self.state: grpc.ChannelConnectivity | None = None
        self._asked = 0.0
        channel.subscribe(self._watch, try_to_connect=True)

    def _watch(self, state: grpc.ChannelConnectivity) -> None:
        self.state = state

    def stub_if_ready(self) -> Any:
        state = self.state
        if state is grpc.ChannelConnectivity.READY:
            return self.stub
        now = time.monotonic()
        if state is grpc.ChannelConnectivity.IDLE and now - self._asked >= 1.0:
            self._asked = now  # a call is what makes an idle channel connect
            self.stub.Health.future(pb.HealthRequest(), timeout=2, metadata=self.metadata)
        return None


class Client(BaseClient):
    """Blocking client. Use as a context manager, or call `close()`."""

    _open_channel = staticmethod(open_channel)
    channel: grpc.Channel

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self.channel.close()
        with self._workers_lock:
            for worker in self._workers.values():
                worker.channel.close()
            self._workers.clear()

    def _call(self, method: str, request: Any, *, carrying: int = 0) -> Any:
        """`method` sent where it belongs (`client._routing`), again after a redirect."""
        for attempt in range(ATTEMPTS):
            stub, metadata = self._route(method, request, last=attempt + 1 == ATTEMPTS)
            try:
                return getattr(stub, method)(
                    request, timeout=self._timeout(carrying), metadata=metadata
                )
            except grpc.RpcError as exc:
                error = translate(exc)
                if not isinstance(error, WrongOwner) or attempt + 1 == ATTEMPTS:
                    raise error from None
                self.routes.forget(error)
        raise AssertionError("unreachable: the last attempt returns or raises")

    def _stream(self, method: str, request: Any) -> Iterator[Any]:
        """The items of the stream `method`, sent where it belongs; a redirect before the
        first item sends it again."""
        for attempt in range(ATTEMPTS):
            stub, metadata = self._route(method, request, last=attempt + 1 == ATTEMPTS)
            received = False
            try:
                for item in getattr(stub, method)(request, metadata=metadata):
                    received = True
                    yield item
                return
            except grpc.RpcError as exc:
                error = translate(exc)
                if received or not isinstance(error, WrongOwner) or attempt + 1 == ATTEMPTS:
                    raise error from None
                self.routes.forget(error)

    def _route(self, method: str, request: Any, *, last: bool) -> tuple[Any, Any]:
        """The stub to send `method` with and the metadata to send: the owner's (with the
        map's epoch) when the map names one whose channel is connected, else the graph's."""
        if last:
            return self.stub, self.metadata
        if self.routes.wants_map(method):
            self._fetch_map()
        address, extra = self.routes.destination(method, request)
        stub = self._worker_stub(address) if address else None
        return (self.stub, self.metadata) if stub is None else (stub, self.metadata + extra)

    def _fetch_map(self) -> None:
        try:
            shard_map = self.stub.GetShardMap(
                pb.GetShardMapRequest(), timeout=self._map_timeout(), metadata=self.metadata
            )
        except grpc.RpcError as exc:
            self.routes.unknown(forever=exc.code() is grpc.StatusCode.UNIMPLEMENTED)
            return
        self.routes.learn(shard_map)

    def _worker_stub(self, address: str) -> Any:
        """The stub of the worker at `address` once its channel is connected (None before:
        the call goes to the graph's address meanwhile)."""
        with self._workers_lock:
            worker = self._workers.get(address)
            if worker is None:
                worker = _Worker(*self._open_worker(address), self.metadata)
                self._workers[address] = worker
        return worker.stub_if_ready()

    @staticmethod
    def _paged(page: Callable[[str], Any], field: str) -> Iterator[Any]:
        """The items in `field` of every page of a listing; `page(token)` fetches one."""
        token = ""
        while True:
            reply = page(token)
            yield from getattr(reply, field)
            token = reply.next_page_token
            if not token:
                return

    # sessions
    def create_session(self, **fields: Any) -> pb.Session:
        """Fields: title, user_id, agent_id, model, metadata, session_id."""
        return self._call("CreateSession", self._create_session_request(**fields))

    def get_session(self, session_id: str) -> pb.Session:
        return self._call("GetSession", pb.GetSessionRequest(session_id=session_id))

    def close_session(self, session_id: str) -> pb.Session:
        return self._call("CloseSession", pb.CloseSessionRequest(session_id=session_id))

    def delete_session(self, session_id: str) -> pb.DeleteSessionResponse:
        request = pb.DeleteSessionRequest(session_id=session_id)
        return self._call("DeleteSession", request)

    def list_sessions(
        self,
        *,
        limit: int = 0,
        page_token: str = "",
        state: str | int | None = None,
        user_id: str = "",
    ) -> pb.ListSessionsResponse:
        request = self._list_sessions_request(limit, page_token, state, user_id)
        return self._call("ListSessions", request)

    def iter_sessions(self, **filters: Any) -> Iterator[pb.Session]:
        """Every session (newest first), following pages."""
        yield from self._paged(
            lambda token: self.list_sessions(page_token=token, **filters), "sessions"
        )

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
        request = self._create_node_request(kind, session_id, content, metadata, node_id, details)
        return self._call("CreateNode", request)

    def get_node(self, node_id: str) -> pb.Node:
        return self._call("GetNode", pb.GetNodeRequest(node_id=node_id))

    def update_node(
        self,
        node_id: str,
        *,
        content: str | None = None,
        metadata: Mapping[str, str] | None = None,
    ) -> pb.Node:
        request = self._update_node_request(node_id, content, metadata)
        return self._call("UpdateNode", request)

    def delete_node(self, node_id: str) -> pb.DeleteNodeResponse:
        return self._call("DeleteNode", pb.DeleteNodeRequest(node_id=node_id))

    def batch_create_nodes(
        self, requests: Iterable[pb.CreateNodeRequest]
    ) -> pb.BatchCreateNodesResponse:
        request = pb.BatchCreateNodesRequest(requests=list(requests))
        return self._call("BatchCreateNodes", request)

    def batch_get_nodes(self, node_ids: Iterable[str]) -> pb.BatchGetNodesResponse:
        request = pb.BatchGetNodesRequest(node_ids=list(node_ids))
        return self._call("BatchGetNodes", request)

    # edges
    def create_edge(
        self,
        source_id: str,
        target_id: str,
        kind: str | int,
        *,
        metadata: Mapping[str, str] | None = None,
    ) -> pb.Edge:
        request = self._create_edge_request(source_id, target_id, kind, metadata)
        return self._call("CreateEdge", request)

    def get_edges(
        self, node_id: str, *, direction: str | int = "outgoing", kinds: Sequence[str | int] = ()
    ) -> list[pb.Edge]:
        request = self._get_edges_request(node_id, direction, kinds)
        return list(self._call("GetEdges", request).edges)

    def delete_edge(self, source_id: str, target_id: str, kind: str | int) -> None:
        request = self._delete_edge_request(source_id, target_id, kind)
        self._call("DeleteEdge", request)

    # queries
    def query(self, *, limit: int = 0, page_token: str = "", **filters: Any) -> pb.QueryResponse:
        """Filters: session_id, kinds, start_time, end_time, metadata, descending."""
        request = self._query_request(limit, page_token, **filters)
        return self._call("Query", request)

    def iter_query(self, **filters: Any) -> Iterator[pb.Node]:
        """Every matching node, following pages."""
        yield from self._paged(lambda token: self.query(page_token=token, **filters), "nodes")

    def stream_query(
        self, *, batch_size: int = 0, limit: int = 0, **filters: Any
    ) -> Iterator[pb.Node]:
        """Every matching node over one server stream."""
        request = self._stream_query_request(batch_size, limit, **filters)
        for batch in self._stream("StreamQuery", request):
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
        request = self._traverse_request(start_node_id, edge_kinds, direction, max_depth, max_nodes)
        return self._call("Traverse", request)

    # LLM turns
    def add_prompt(self, session_id: str, content: str, **fields: Any) -> pb.Node:
        """Fields: model, role, metadata."""
        request = self._add_prompt_request(session_id, content, **fields)
        return self._call("AddPrompt", request)

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
        request = self._add_response_request(prompt_id, content, token_usage, **fields)
        return self._call("AddResponse", request)

    def add_tool_invocation(
        self, response_id: str, tool_name: str, *, status: str | int | None = None, **fields: Any
    ) -> pb.Node:
        """`status`: "succeeded" or "failed". Fields: arguments, result, duration_ms, metadata."""
        request = self._add_tool_invocation_request(response_id, tool_name, status, **fields)
        return self._call("AddToolInvocation", request)

    def record_turn(
        self,
        session_id: str,
        prompt: str,
        response: str,
        *,
        model: str = "",
        token_usage: pb.TokenUsage | tuple[int, int] | None = None,
        tool_invocations: Iterable[pb.AddToolInvocationRequest | Mapping[str, Any]] = (),
        prompt_fields: Mapping[str, Any] | None = None,
        response_fields: Mapping[str, Any] | None = None,
    ) -> pb.RecordTurnResponse:
        """One whole turn in one call, written together or not at all: the prompt, the
        response answering it (`token_usage` as (prompt_tokens, completion_tokens)) and the
        tool invocations it made, each a mapping of AddToolInvocationRequest fields
        (`tool_name`, `arguments`, `result`, `status`: "succeeded" or "failed", `duration_ms`,
        `metadata`) or such a request. `model` goes on the prompt and the response; further
        fields of each in `prompt_fields` (role, metadata) and `response_fields`
        (finish_reason, latency_ms, metadata)."""
        request = self._record_turn_request(
            session_id,
            prompt,
            response,
            model=model,
            token_usage=token_usage,
            tool_invocations=tool_invocations,
            prompt_fields=prompt_fields,
            response_fields=response_fields,
        )
        return self._call("RecordTurn", request)

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
        request = self._create_template_request(name, content, variables, metadata, template_id)
        return self._call("CreateTemplate", request)

    def get_template(self, *, template_id: str = "", name: str = "") -> pb.Template:
        request = self._get_template_request(template_id, name)
        return self._call("GetTemplate", request)

    def instantiate_template(
        self,
        *,
        template_id: str = "",
        name: str = "",
        variables: Mapping[str, str] | None = None,
        **fields: Any,
    ) -> pb.InstantiateTemplateResponse:
        """Fields: session_id (records the text as a prompt there), model, role, metadata."""
        request = self._instantiate_template_request(template_id, name, variables, **fields)
        return self._call("InstantiateTemplate", request)

    # bulk loading and events
    def ingest(self, batches: Iterable[pb.IngestBatch]) -> Iterator[pb.IngestAck]:
        """Send batches over one stream; yields each batch's acknowledgement."""
        yield from self._stream("Ingest", iter(batches))

    def stream_events(
        self,
        *,
        from_sequence: int = 0,
        session_id: str = "",
        types: Sequence[str | int] = (),
    ) -> Iterator[pb.Event]:
        """Retained events from `from_sequence` (0: only new ones), then live ones."""
        request = self._stream_events_request(from_sequence, session_id, types)
        return self._stream("StreamEvents", request)

    def subscribe_to_session(
        self, session_id: str, *, from_sequence: int = 0
    ) -> Iterator[pb.Event]:
        """The session's events from `from_sequence` (0: only new ones), until it is deleted
        or archived."""
        request = pb.SubscribeToSessionRequest(session_id=session_id, from_sequence=from_sequence)
        return self._stream("SubscribeToSession", request)

    # archival
    def iter_archive_candidates(
        self, idle_before: dt.datetime, *, page_size: int = 0
    ) -> Iterator[pb.ArchiveCandidate]:
        """Every session closed, or idle, since before `idle_before`, oldest first."""

        def page(token: str) -> pb.ListArchiveCandidatesResponse:
            request = self._archive_candidates_request(idle_before, page_size, token)
            return self._call("ListArchiveCandidates", request)

        yield from self._paged(page, "candidates")

    def export_session(
        self, session_id: str, *, for_archive: bool = False
    ) -> tuple[bytes, pb.ExportSummary]:
        """The session's canonical export and its summary (counts, SHA-256)."""
        request = pb.ExportSessionRequest(session_id=session_id, for_archive=for_archive)
        return self._export_result(list(self._stream("ExportSession", request)))

    def archive_session(
        self, session_id: str, content_sha256: str, *, archive_id: str = ""
    ) -> pb.ArchiveSessionResponse:
        """Remove an archived session while it still exports to `content_sha256`."""
        request = pb.ArchiveSessionRequest(
            session_id=session_id, content_sha256=content_sha256, archive_id=archive_id
        )
        return self._call("ArchiveSession", request)

    def restore_session(self, export: bytes) -> pb.RestoreSessionResponse:
        """Write an exported session back (idempotent)."""
        chunks = iter(self._restore_chunks(export))
        return self._call("RestoreSession", chunks, carrying=len(export))

    # operations
    def health(self) -> pb.HealthResponse:
        return self._call("Health", pb.HealthRequest())

    def get_metrics(self) -> pb.GetMetricsResponse:
        return self._call("GetMetrics", pb.GetMetricsRequest())

    def get_shard_map(self) -> pb.ShardMap:
        """Which worker (address) owns which shard, and the map's epoch."""
        return self._call("GetShardMap", pb.GetShardMapRequest())

    def move_shard(self, shard: int, worker: int) -> pb.MoveShardResponse:
        """Move `shard` to `worker` while the graph serves (see the MoveShard RPC)."""
        return self._call("MoveShard", pb.MoveShardRequest(shard=shard, worker=worker))
