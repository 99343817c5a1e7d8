"""`AsyncClient`: the asyncio twin of `Client`.

The same methods with the same parameters (a test holds them in step): coroutines where `Client`
returns a value, async iterators where it returns an iterator. Requests are built by the shared
base; this module only awaits them.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import (
    AsyncIterable,
    AsyncIterator,
    Awaitable,
    Callable,
    Iterable,
    Mapping,
    Sequence,
)
from typing import Any

import grpc

from memorygraph.client._base import BaseClient
from memorygraph.client._connection import open_aio_channel
from memorygraph.client._errors import translate
from memorygraph.client._routing import ATTEMPTS
from memorygraph.errors import WrongOwner
from memorygraph.v1 import graph_pb2 as pb

__all__ = ["AsyncClient"]


class AsyncClient(BaseClient):
    """asyncio client with the same methods as `Client`, as coroutines and async iterators.
    Use as an async context manager, or await `close()`."""

    _open_channel = staticmethod(open_aio_channel)
    channel: grpc.aio.Channel

    async def __aenter__(self) -> AsyncClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def close(self) -> None:
        await self.channel.close()
        workers, self._workers = self._workers, {}
        for channel, _ in workers.values():
            await channel.close()

    async def _call(self, method: str, request: Any, *, carrying: int = 0) -> Any:
        """`method` sent where it belongs (`client._routing`), again after a redirect."""
        for attempt in range(ATTEMPTS):
            stub, metadata = await self._route(method, request, last=attempt + 1 == ATTEMPTS)
            try:
                return await getattr(stub, method)(
                    request, timeout=self._timeout(carrying), metadata=metadata
                )
            except grpc.RpcError as exc:
                error = translate(exc)
                if not isinstance(error, WrongOwner) or attempt + 1 == ATTEMPTS:
                    raise error from None
                self.routes.forget(error)
        raise AssertionError("unreachable: the last attempt returns or raises")

    async def _stream(self, method: str, request: Any) -> AsyncIterator[Any]:
        """The items of the stream `method`, sent where it belongs; a redirect before the
        first item sends it again."""
        for attempt in range(ATTEMPTS):
            stub, metadata = await self._route(method, request, last=attempt + 1 == ATTEMPTS)
            received = False
            try:
                async for item in getattr(stub, method)(request, metadata=metadata):
                    received = True
                    yield item
                return
            except grpc.RpcError as exc:
                error = translate(exc)
                if received or not isinstance(error, WrongOwner) or attempt + 1 == ATTEMPTS:
                    raise error from None
                self.routes.forget(error)

    async def _route(self, method: str, request: Any, *, last: bool) -> tuple[Any, Any]:
        """The stub to send `method` with and the metadata to send: the owner's (with the
        map's epoch) when the map names one whose channel is connected, else the graph's."""
        if last:
            return self.stub, self.metadata
        if self.routes.wants_map(method):
            await self._fetch_map()
        address, extra = self.routes.destination(method, request)
        stub = self._worker_stub(address) if address else None
        return (self.stub, self.metadata) if stub is None else (stub, self.metadata + extra)

    async def _fetch_map(self) -> None:
        try:
            shard_map = await self.stub.GetShardMap(
                pb.GetShardMapRequest(), timeout=self._map_timeout(), metadata=self.metadata
            )
        except grpc.RpcError as exc:
            self.routes.unknown(forever=exc.code() is grpc.StatusCode.UNIMPLEMENTED)
            return
        self.routes.learn(shard_map)

    def _worker_stub(self, address: str) -> Any:
        """The stub of the worker at `address` once its channel is connected (None before:
        the call goes to the graph's address meanwhile; asking starts the connection)."""
        worker = self._workers.get(address)
        if worker is None:
            worker = self._workers[address] = self._open_worker(address)
        channel, stub = worker
        ready = channel.get_state(try_to_connect=True) is grpc.ChannelConnectivity.READY
        return stub if ready else None

    @staticmethod
    async def _paged(page: Callable[[str], Awaitable[Any]], field: str) -> AsyncIterator[Any]:
        """The items in `field` of every page of a listing; `page(token)` fetches one."""
        token = ""
        while True:
            reply = await page(token)
            for item in getattr(reply, field):
                yield item
            token = reply.next_page_token
            if not token:
                return

    # sessions
    async def create_session(self, **fields: Any) -> pb.Session:
        """Fields: title, user_id, agent_id, model, metadata, session_id."""
        return await self._call("CreateSession", self._create_session_request(**fields))

    async def get_session(self, session_id: str) -> pb.Session:
        request = pb.GetSessionRequest(session_id=session_id)
        return await self._call("GetSession", request)

    async def close_session(self, session_id: str) -> pb.Session:
        request = pb.CloseSessionRequest(session_id=session_id)
        return await self._call("CloseSession", request)

    async def delete_session(self, session_id: str) -> pb.DeleteSessionResponse:
        request = pb.DeleteSessionRequest(session_id=session_id)
        return await self._call("DeleteSession", request)

    async def list_sessions(
        self,
        *,
        limit: int = 0,
        page_token: str = "",
        state: str | int | None = None,
        user_id: str = "",
    ) -> pb.ListSessionsResponse:
        request = self._list_sessions_request(limit, page_token, state, user_id)
        return await self._call("ListSessions", request)

    async def iter_sessions(self, **filters: Any) -> AsyncIterator[pb.Session]:
        """Every session (newest first), following pages."""
        pages = self._paged(
            lambda token: self.list_sessions(page_token=token, **filters), "sessions"
        )
        async for session in pages:
            yield session

    # nodes
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
        request = self._create_node_request(kind, session_id, content, metadata, node_id, details)
        return await self._call("CreateNode", request)

    async def get_node(self, node_id: str) -> pb.Node:
        return await self._call("GetNode", pb.GetNodeRequest(node_id=node_id))

    async def update_node(
        self,
        node_id: str,
        *,
        content: str | None = None,
        metadata: Mapping[str, str] | None = None,
    ) -> pb.Node:
        request = self._update_node_request(node_id, content, metadata)
        return await self._call("UpdateNode", request)

    async def delete_node(self, node_id: str) -> pb.DeleteNodeResponse:
        request = pb.DeleteNodeRequest(node_id=node_id)
        return await self._call("DeleteNode", request)

    async def batch_create_nodes(
        self, requests: Iterable[pb.CreateNodeRequest]
    ) -> pb.BatchCreateNodesResponse:
        request = pb.BatchCreateNodesRequest(requests=list(requests))
        return await self._call("BatchCreateNodes", request)

    async def batch_get_nodes(self, node_ids: Iterable[str]) -> pb.BatchGetNodesResponse:
        request = pb.BatchGetNodesRequest(node_ids=list(node_ids))
        return await self._call("BatchGetNodes", request)

    # edges
    async def create_edge(
        self,
        source_id: str,
        target_id: str,
        kind: str | int,
        *,
        metadata: Mapping[str, str] | None = None,
    ) -> pb.Edge:
        request = self._create_edge_request(source_id, target_id, kind, metadata)
        return await self._call("CreateEdge", request)

    async def get_edges(
        self, node_id: str, *, direction: str | int = "outgoing", kinds: Sequence[str | int] = ()
    ) -> list[pb.Edge]:
        request = self._get_edges_request(node_id, direction, kinds)
        return list((await self._call("GetEdges", request)).edges)

    async def delete_edge(self, source_id: str, target_id: str, kind: str | int) -> None:
        request = self._delete_edge_request(source_id, target_id, kind)
        await self._call("DeleteEdge", request)

    # queries
    async def query(
        self, *, limit: int = 0, page_token: str = "", **filters: Any
    ) -> pb.QueryResponse:
        """Filters: session_id, kinds, start_time, end_time, metadata, descending."""
        request = self._query_request(limit, page_token, **filters)
        return await self._call("Query", request)

    async def iter_query(self, **filters: Any) -> AsyncIterator[pb.Node]:
        """Every matching node, following pages."""
        pages = self._paged(lambda token: self.query(page_token=token, **filters), "nodes")
        async for node in pages:
            yield node

    async def stream_query(
        self, *, batch_size: int = 0, limit: int = 0, **filters: Any
    ) -> AsyncIterator[pb.Node]:
        """Every matching node over one server stream."""
        request = self._stream_query_request(batch_size, limit, **filters)
        async for batch in self._stream("StreamQuery", request):
            for node in batch.nodes:
                yield node

    async def traverse(
        self,
        start_node_id: str,
        *,
        edge_kinds: Sequence[str | int] = (),
        direction: str | int = "outgoing",
        max_depth: int = 0,
        max_nodes: int = 0,
    ) -> pb.TraverseResponse:
        request = self._traverse_request(start_node_id, edge_kinds, direction, max_depth, max_nodes)
        return await self._call("Traverse", request)

    # LLM turns
    async def add_prompt(self, session_id: str, content: str, **fields: Any) -> pb.Node:
        """Fields: model, role, metadata."""
        request = self._add_prompt_request(session_id, content, **fields)
        return await self._call("AddPrompt", request)

    async def add_response(
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
        return await self._call("AddResponse", request)

    async def add_tool_invocation(
        self, response_id: str, tool_name: str, *, status: str | int | None = None, **fields: Any
    ) -> pb.Node:
        """`status`: "succeeded" or "failed". Fields: arguments, result, duration_ms, metadata."""
        request = self._add_tool_invocation_request(response_id, tool_name, status, **fields)
        return await self._call("AddToolInvocation", request)

    async def record_turn(
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
        return await self._call("RecordTurn", request)

    # templates
    async def create_template(
        self,
        name: str,
        content: str,
        *,
        variables: Iterable[pb.TemplateVariable | Mapping[str, Any]] = (),
        metadata: Mapping[str, str] | None = None,
        template_id: str = "",
    ) -> pb.Template:
        request = self._create_template_request(name, content, variables, metadata, template_id)
        return await self._call("CreateTemplate", request)

    async def get_template(self, *, template_id: str = "", name: str = "") -> pb.Template:
        request = self._get_template_request(template_id, name)
        return await self._call("GetTemplate", request)

    async def instantiate_template(
        self,
        *,
        template_id: str = "",
        name: str = "",
        variables: Mapping[str, str] | None = None,
        **fields: Any,
    ) -> pb.InstantiateTemplateResponse:
        """Fields: session_id (records the text as a prompt there), model, role, metadata."""
        request = self._instantiate_template_request(template_id, name, variables, **fields)
        return await self._call("InstantiateTemplate", request)

    # bulk loading and events
    async def ingest(
        self, batches: Iterable[pb.IngestBatch] | AsyncIterable[pb.IngestBatch]
    ) -> AsyncIterator[pb.IngestAck]:
        """Send batches (from an iterable or an async iterable) over one stream; yields each
        batch's acknowledgement."""
        requests = batches if isinstance(batches, AsyncIterable) else iter(batches)
        async for ack in self._stream("Ingest", requests):
            yield ack

    async def stream_events(
        self,
        *,
        from_sequence: int = 0,
        session_id: str = "",
        types: Sequence[str | int] = (),
    ) -> AsyncIterator[pb.Event]:
        """Retained events from `from_sequence` (0: only new ones), then live ones."""
        request = self._stream_events_request(from_sequence, session_id, types)
        async for event in self._stream("StreamEvents", request):
            yield event

    async def subscribe_to_session(
        self, session_id: str, *, from_sequence: int = 0
    ) -> AsyncIterator[pb.Event]:
        """The session's events from `from_sequence` (0: only new ones), until it is deleted
        or archived."""
        request = pb.SubscribeToSessionRequest(session_id=session_id, from_sequence=from_sequence)
        async for event in self._stream("SubscribeToSession", request):
            yield event

    # archival
    async def iter_archive_candidates(
        self, idle_before: dt.datetime, *, page_size: int = 0
    ) -> AsyncIterator[pb.ArchiveCandidate]:
        """Every session closed, or idle, since before `idle_before`, oldest first."""

        async def page(token: str) -> pb.ListArchiveCandidatesResponse:
            request = self._archive_candidates_request(idle_before, page_size, token)
            return await self._call("ListArchiveCandidates", request)

        async for candidate in self._paged(page, "candidates"):
            yield candidate

    async def export_session(
        self, session_id: str, *, for_archive: bool = False
    ) -> tuple[bytes, pb.ExportSummary]:
        """The session's canonical export and its summary (counts, SHA-256)."""
        request = pb.ExportSessionRequest(session_id=session_id, for_archive=for_archive)
        chunks = [c async for c in self._stream("ExportSession", request)]
        return self._export_result(chunks)

    async def archive_session(
        self, session_id: str, content_sha256: str, *, archive_id: str = ""
    ) -> pb.ArchiveSessionResponse:
        """Remove an archived session while it still exports to `content_sha256`."""
        request = pb.ArchiveSessionRequest(
            session_id=session_id, content_sha256=content_sha256, archive_id=archive_id
        )
        return await self._call("ArchiveSession", request)

    async def restore_session(self, export: bytes) -> pb.RestoreSessionResponse:
        """Write an exported session back (idempotent)."""
        chunks = iter(self._restore_chunks(export))
        return await self._call("RestoreSession", chunks, carrying=len(export))

    # operations
    async def health(self) -> pb.HealthResponse:
        return await self._call("Health", pb.HealthRequest())

    async def get_metrics(self) -> pb.GetMetricsResponse:
        return await self._call("GetMetrics", pb.GetMetricsRequest())

    async def get_shard_map(self) -> pb.ShardMap:
        """Which worker (address) owns which shard, and the map's epoch."""
        return await self._call("GetShardMap", pb.GetShardMapRequest())

    async def move_shard(self, shard: int, worker: int) -> pb.MoveShardResponse:
        """Move `shard` to `worker` while the graph serves (see the MoveShard RPC)."""
        return await self._call("MoveShard", pb.MoveShardRequest(shard=shard, worker=worker))
