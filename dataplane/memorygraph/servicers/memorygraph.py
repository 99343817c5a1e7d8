"""`MemoryGraphService` servicer: translate each request, call the graph service, translate back.

Errors are not handled here: domain errors propagate to the handler wrapper
(`servicers.handlers`), which maps them to status codes in one place.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator
from typing import Any

import grpc
from google.protobuf.message import Message
from google.protobuf.message_factory import GetMessageClass

from memorygraph import __version__
from memorygraph.codec import enums
from memorygraph.codec import requests as rq
from memorygraph.codec.framing import frame
from memorygraph.codec.ingest import ingest_items
from memorygraph.codec.messages import edge_message, event_message
from memorygraph.codec.nodes import node_bytes, node_message, session_message, template_message
from memorygraph.codec.times import request_micros, timestamp
from memorygraph.errors import FailedPrecondition, InvalidArgument, RequestError
from memorygraph.events.hub import EventFilter, EventHub, Watermark
from memorygraph.graph.export import EXPORT_VERSION
from memorygraph.graph.hooks import Read
from memorygraph.graph.query import QueryFilter
from memorygraph.graph.service import GraphService
from memorygraph.metrics import definitions as metrics
from memorygraph.model import MAX_TIME, EventType, PromptDetails, format_id
from memorygraph.servicers.restores import RestoreLimits
from memorygraph.v1 import graph_pb2 as pb
from memorygraph.v1 import graph_pb2_grpc as pb_grpc

__all__ = [
    "MemoryGraphServicer",
    "add_handlers",
    "add_to_server",
    "query_filter",
    "service_handlers",
]

log = logging.getLogger("memorygraph.archive")

Context = grpc.ServicerContext
# Export bytes per streamed message: well under any max message size.
EXPORT_CHUNK = 1 << 20
UPDATABLE_FIELDS = frozenset({"content", "metadata"})
_HANDLER_FACTORIES = {
    (False, False): grpc.unary_unary_rpc_method_handler,
    (False, True): grpc.unary_stream_rpc_method_handler,
    (True, False): grpc.stream_unary_rpc_method_handler,
    (True, True): grpc.stream_stream_rpc_method_handler,
}


SERVICE = pb.DESCRIPTOR.services_by_name["MemoryGraphService"]
_TURN_FIELDS = pb.RecordTurnResponse.DESCRIPTOR.fields_by_name
_TURN_PROMPT = _TURN_FIELDS["prompt"].number
_TURN_RESPONSE = _TURN_FIELDS["response"].number
_TURN_TOOLS = _TURN_FIELDS["tool_invocations"].number


def _serialize(message: Message | bytes) -> bytes:
    return message if isinstance(message, bytes) else message.SerializeToString()


def service_handlers(servicer: object) -> dict[str, grpc.RpcMethodHandler[Any, Any]]:
    """The handlers of `servicer` (a `MemoryGraphServicer`, or a worker's front to one) by
    method name, as the generated `add_MemoryGraphServiceServicer_to_server` makes them,
    except that a method may also answer with a message already serialized: stored records
    go out without being parsed and serialized again."""
    return {
        method.name: _HANDLER_FACTORIES[method.client_streaming, method.server_streaming](
            getattr(servicer, method.name),
            request_deserializer=GetMessageClass(method.input_type).FromString,
            response_serializer=_serialize,
        )
        for method in SERVICE.methods
    }


def add_to_server(servicer: object, server: grpc.Server) -> None:
    """Register `servicer` with `server`."""
    add_handlers(service_handlers(servicer), server)


def add_handlers(handlers: dict[str, grpc.RpcMethodHandler[Any, Any]], server: grpc.Server) -> None:
    """Register the service's `handlers` (made by `service_handlers`) with `server`."""
    server.add_generic_rpc_handlers(
        (grpc.method_handlers_generic_handler(SERVICE.full_name, handlers),)
    )
    server.add_registered_method_handlers(SERVICE.full_name, handlers)


def query_filter(message: pb.QueryFilter) -> QueryFilter:
    start = request_micros(message.start_time, 0)
    end = request_micros(message.end_time, MAX_TIME)
    if end <= start:
        raise InvalidArgument("end_time must be after start_time")
    return QueryFilter(
        session_id=rq.optional_id(message.session_id, "filter.session_id"),
        kinds=enums.node_kinds(message.kinds, "filter.kinds"),
        start_time=start,
        end_time=end,
        metadata=tuple(sorted(message.metadata.items())),
        descending=message.descending,
    )


class MemoryGraphServicer(pb_grpc.MemoryGraphServiceServicer):
    def __init__(
        self,
        service: GraphService,
        hub: EventHub,
        *,
        durability: str,
        request_counts: Callable[[], dict[str, int]],
        undelivered_from: Callable[[], int | None] = lambda: None,
        restores: RestoreLimits | None = None,
    ) -> None:
        """`undelivered_from()` is the oldest event the registry reporter still has to
        deliver (None without a registry): archival keeps sessions with such events."""
        self.service = service
        self.undelivered_from = undelivered_from
        self.restores = restores or RestoreLimits(max_restores=2, budget_bytes=256 << 20)
        self.hub = hub
        self.durability = durability
        self.request_counts = request_counts
        self.started = time.monotonic()

    # -- sessions ----------------------------------------------------------------------------

    def CreateSession(self, request: pb.CreateSessionRequest, context: Context) -> pb.Session:
        return session_message(self.service.create_session(rq.new_session(request)))

    def GetSession(self, request: pb.GetSessionRequest, context: Context) -> pb.Session:
        node = self.service.get_session(rq.node_id(request.session_id, "session_id"))
        return session_message(node)

    def CloseSession(self, request: pb.CloseSessionRequest, context: Context) -> pb.Session:
        node = self.service.close_session(rq.node_id(request.session_id, "session_id"))
        return session_message(node)

    def DeleteSession(
        self, request: pb.DeleteSessionRequest, context: Context
    ) -> pb.DeleteSessionResponse:
        nodes, edges = self.service.delete_session(rq.node_id(request.session_id, "session_id"))
        return pb.DeleteSessionResponse(deleted_nodes=nodes, deleted_edges=edges)

    def ListSessions(
        self, request: pb.ListSessionsRequest, context: Context
    ) -> pb.ListSessionsResponse:
        page = self.service.list_sessions(
            limit=request.limit,
            page_token=request.page_token,
            state=enums.session_state(request.state),
            user_id=request.user_id,
        )
        return pb.ListSessionsResponse(
            sessions=[session_message(n) for n in page.nodes],
            next_page_token=page.next_page_token,
        )

    # -- nodes -------------------------------------------------------------------------------

    def CreateNode(self, request: pb.CreateNodeRequest, context: Context) -> bytes:
        return node_bytes(self.service.create_node(rq.new_node(request)))

    def GetNode(self, request: pb.GetNodeRequest, context: Context) -> bytes:
        return self.service.get_node_record(rq.node_id(request.node_id))

    def UpdateNode(self, request: pb.UpdateNodeRequest, context: Context) -> pb.Node:
        paths = set(request.update_mask.paths) or set(UPDATABLE_FIELDS)
        unknown = paths - UPDATABLE_FIELDS
        if unknown:
            raise InvalidArgument(
                f"update_mask paths {sorted(unknown)} cannot be updated; use content, metadata"
            )
        node = self.service.update_node(
            rq.node_id(request.node_id),
            content=request.content if "content" in paths else None,
            metadata=dict(request.metadata) if "metadata" in paths else None,
        )
        return node_message(node)

    def DeleteNode(self, request: pb.DeleteNodeRequest, context: Context) -> pb.DeleteNodeResponse:
        edges = self.service.delete_node(rq.node_id(request.node_id))
        return pb.DeleteNodeResponse(deleted_edges=edges)

    def BatchCreateNodes(
        self, request: pb.BatchCreateNodesRequest, context: Context
    ) -> pb.BatchCreateNodesResponse:
        specs = []
        for i, item in enumerate(request.requests):
            try:
                specs.append(rq.new_node(item))
            except InvalidArgument as exc:
                raise InvalidArgument(f"requests[{i}]: {exc}") from None
        nodes = self.service.create_nodes(specs)
        return pb.BatchCreateNodesResponse(nodes=[node_message(n) for n in nodes])

    def BatchGetNodes(
        self, request: pb.BatchGetNodesRequest, context: Context
    ) -> pb.BatchGetNodesResponse:
        ids = [rq.node_id(text, f"node_ids[{i}]") for i, text in enumerate(request.node_ids)]
        found, missing = self.service.get_nodes(ids)
        return pb.BatchGetNodesResponse(
            nodes=[node_message(n) for n in found],
            missing_ids=[format_id(m) for m in missing],
        )

    # -- edges -------------------------------------------------------------------------------

    def CreateEdge(self, request: pb.CreateEdgeRequest, context: Context) -> pb.Edge:
        return edge_message(self.service.create_edge(rq.new_edge(request)))

    def GetEdges(self, request: pb.GetEdgesRequest, context: Context) -> pb.GetEdgesResponse:
        edges = self.service.get_edges(
            rq.node_id(request.node_id),
            enums.direction(request.direction),
            enums.edge_kinds(request.kinds),
        )
        return pb.GetEdgesResponse(edges=[edge_message(e) for e in edges])

    def DeleteEdge(self, request: pb.DeleteEdgeRequest, context: Context) -> pb.DeleteEdgeResponse:
        self.service.delete_edge(
            rq.node_id(request.source_id, "source_id"),
            rq.node_id(request.target_id, "target_id"),
            enums.edge_kind(request.kind),
        )
        return pb.DeleteEdgeResponse()

    # -- queries -----------------------------------------------------------------------------

    # Query results are stored node records, framed as `nodes` entries: joined, they are the
    # response (see `codec.framing`).

    def Query(self, request: pb.QueryRequest, context: Context) -> bytes:
        page = self.service.query(
            query_filter(request.filter), limit=request.limit, page_token=request.page_token
        )
        token = pb.QueryResponse(next_page_token=page.next_page_token).SerializeToString()
        return b"".join(page.entries) + token

    def StreamQuery(self, request: pb.StreamQueryRequest, context: Context) -> Iterator[bytes]:
        batches = self.service.stream_query(
            query_filter(request.filter), batch_size=request.batch_size, limit=request.limit
        )
        for batch in batches:
            if not context.is_active():
                return
            yield b"".join(batch)

    def Traverse(self, request: pb.TraverseRequest, context: Context) -> pb.TraverseResponse:
        result = self.service.traverse(
            rq.node_id(request.start_node_id, "start_node_id"),
            edge_kinds=enums.edge_kinds(request.edge_kinds, "edge_kinds"),
            direction=enums.direction(request.direction),
            max_depth=request.max_depth,
            max_nodes=request.max_nodes,
        )
        return pb.TraverseResponse(
            nodes=[pb.TraversedNode(node=node_message(n), depth=d) for n, d in result.nodes],
            edges=[edge_message(e) for e in result.edges],
            truncated=result.truncated,
        )

    # -- LLM turns ---------------------------------------------------------------------------

    def AddPrompt(self, request: pb.AddPromptRequest, context: Context) -> bytes:
        return node_bytes(self.service.create_node(rq.prompt_node(request)))

    def AddResponse(self, request: pb.AddResponseRequest, context: Context) -> bytes:
        return node_bytes(self.service.create_node(rq.response_node(request)))

    def AddToolInvocation(self, request: pb.AddToolInvocationRequest, context: Context) -> bytes:
        return node_bytes(self.service.create_node(rq.tool_node(request)))

    def RecordTurn(self, request: pb.RecordTurnRequest, context: Context) -> bytes:
        prompt, response, *tools = self.service.create_nodes(*rq.turn_nodes(request))
        # The stored records framed as the answer's fields, without parsing them again.
        return b"".join(
            [
                frame(_TURN_PROMPT, node_bytes(prompt)),
                frame(_TURN_RESPONSE, node_bytes(response)),
                *(frame(_TURN_TOOLS, node_bytes(tool)) for tool in tools),
            ]
        )

    # -- templates ---------------------------------------------------------------------------

    def CreateTemplate(self, request: pb.CreateTemplateRequest, context: Context) -> pb.Template:
        node = self.service.templates.create(
            name=request.name,
            content=request.content,
            variables=rq.template_variables(request.variables),
            metadata=dict(request.metadata),
            template_id=rq.optional_id(request.template_id, "template_id"),
        )
        return template_message(node)

    def GetTemplate(self, request: pb.GetTemplateRequest, context: Context) -> pb.Template:
        node = self.service.templates.get(
            template_id=rq.optional_id(request.template_id, "template_id"), name=request.name
        )
        return template_message(node)

    def InstantiateTemplate(
        self, request: pb.InstantiateTemplateRequest, context: Context
    ) -> pb.InstantiateTemplateResponse:
        content, prompt = self.service.templates.instantiate(
            template_id=rq.optional_id(request.template_id, "template_id"),
            name=request.name,
            values=dict(request.variables),
            session_id=rq.optional_id(request.session_id, "session_id"),
            prompt=PromptDetails(model=request.model, role=request.role),
            metadata=dict(request.metadata),
        )
        response = pb.InstantiateTemplateResponse(content=content)
        if prompt is not None:
            response.prompt.CopyFrom(node_message(prompt))
        return response

    # -- bulk loading and events ------------------------------------------------------------

    def Ingest(
        self, request_iterator: Iterator[pb.IngestBatch], context: Context
    ) -> Iterator[pb.IngestAck]:
        for number, batch in enumerate(request_iterator):
            try:
                items, ids = ingest_items(batch, self.service.session_of)
            except InvalidArgument as exc:
                raise InvalidArgument(f"batch {number} ({batch.batch_id!r}): {exc}") from None
            try:
                sequence, _ = self.service.ingest(items)
            except RequestError as exc:
                raise type(exc)(f"batch {number} ({batch.batch_id!r}): {exc}") from None
            yield pb.IngestAck(batch_id=batch.batch_id, ids=ids, sequence=sequence)

    def StreamEvents(self, request: pb.StreamEventsRequest, context: Context) -> Iterator[pb.Event]:
        event_filter = EventFilter(
            session_id=rq.optional_id(request.session_id, "session_id"),
            types=enums.event_types(request.types),
        )
        self.service.before_read(Read("stream_events", event_filter.session_id))
        for event in self.hub.subscribe(event_filter, request.from_sequence, context.is_active):
            yield event_message(event)

    def stream_events_marked(
        self, request: pb.StreamEventsRequest, context: Context
    ) -> Iterator[pb.Event]:
        """StreamEvents of this worker's log, with watermarks while it has nothing to send:
        events of type UNSPECIFIED whose sequence no event still to come is at or below
        (what the worker merging every worker's stream waits on). The read hooks are the
        merging worker's to run, once."""
        event_filter = EventFilter(
            session_id=rq.optional_id(request.session_id, "session_id"),
            types=enums.event_types(request.types),
        )
        events = self.hub.subscribe_marked(
            event_filter, request.from_sequence, context.is_active, self.service.idle_bound
        )
        for event in events:
            if isinstance(event, Watermark):
                yield pb.Event(sequence=event.sequence)
            else:
                yield event_message(event)

    def SubscribeToSession(
        self, request: pb.SubscribeToSessionRequest, context: Context
    ) -> Iterator[pb.Event]:
        session_id = rq.node_id(request.session_id, "session_id")
        self.service.before_read(Read("subscribe_to_session", session_id))
        if not request.from_sequence:
            self.service.require_session(session_id)
        events = self.hub.subscribe(
            EventFilter(session_id=session_id), request.from_sequence, context.is_active
        )
        for event in events:
            yield event_message(event)
            # The session's end, unless a restore brought it back since (a replay meets the
            # archival markers of a restored session's past).
            if event.type in (
                EventType.SESSION_DELETED,
                EventType.SESSION_ARCHIVED,
            ) and not self.service.has_node(session_id):
                return

    # -- archival ----------------------------------------------------------------------------

    def ListArchiveCandidates(
        self, request: pb.ListArchiveCandidatesRequest, context: Context
    ) -> pb.ListArchiveCandidatesResponse:
        if not request.HasField("idle_before"):
            raise InvalidArgument("idle_before is required")
        found, token = self.service.archive.candidates(
            older_than=request_micros(request.idle_before, 0),
            limit=request.limit,
            page_token=request.page_token,
        )
        return pb.ListArchiveCandidatesResponse(
            candidates=[
                pb.ArchiveCandidate(
                    session=session_message(c.session),
                    last_activity_time=timestamp(c.last_activity),
                )
                for c in found
            ],
            next_page_token=token,
        )

    def ExportSession(
        self, request: pb.ExportSessionRequest, context: Context
    ) -> Iterator[pb.ExportSessionChunk]:
        session_id = rq.node_id(request.session_id, "session_id")
        archive = self.service.archive
        export = (
            archive.export_for_archive(session_id)
            if request.for_archive
            else archive.export_session(session_id)
        )
        data = export.encode()
        for start in range(0, len(data), EXPORT_CHUNK):
            yield pb.ExportSessionChunk(data=data[start : start + EXPORT_CHUNK])
        yield pb.ExportSessionChunk(
            summary=pb.ExportSummary(
                nodes=len(export.nodes),
                edges=len(export.edges),
                events=len(export.events),
                size_bytes=len(data),
                content_sha256=export.sha256(),
                format_version=EXPORT_VERSION,
            )
        )

    def ArchiveSession(
        self, request: pb.ArchiveSessionRequest, context: Context
    ) -> pb.ArchiveSessionResponse:
        session_id = rq.node_id(request.session_id, "session_id")
        digest = request.content_sha256
        if len(digest) != 64 or digest.strip("0123456789abcdef"):
            raise InvalidArgument("content_sha256 must be 64 lowercase hex digits")
        try:
            export = self.service.archive.archive_session(
                session_id, content_sha256=digest, undelivered_from=self.undelivered_from()
            )
        except RequestError as exc:
            metrics.ARCHIVE_REFUSED.labels(exc.code.name).inc()
            raise
        metrics.observe_archived(len(export.encode()))
        log.info(
            "archived session %s (%s): %d nodes, %d edges, %d events",
            request.session_id,
            request.archive_id or "no archive id given",
            len(export.nodes) + 1,
            len(export.edges),
            len(export.events),
        )
        return pb.ArchiveSessionResponse(
            deleted_nodes=len(export.nodes) + 1,
            deleted_edges=len(export.edges),
            erased_events=len(export.events),
        )

    def RestoreSession(
        self, request_iterator: Iterator[pb.RestoreSessionChunk], context: Context
    ) -> pb.RestoreSessionResponse:
        pieces = (chunk.data for chunk in request_iterator)
        with self.restores.export(pieces) as export:
            result = self.service.archive.restore_session(export)
        if not result.already_present:
            metrics.RESTORED_SESSIONS.inc()
        return pb.RestoreSessionResponse(
            session=session_message(result.session),
            nodes=result.nodes,
            edges=result.edges,
            events=result.events,
            skipped_edges=len(result.skipped_edges),
            skipped_events=result.skipped_events,
            already_present=result.already_present,
        )

    # -- operations --------------------------------------------------------------------------

    def Health(self, request: pb.HealthRequest, context: Context) -> pb.HealthResponse:
        return pb.HealthResponse(
            status=pb.HealthResponse.STATUS_SERVING,
            version=__version__,
            uptime_seconds=int(time.monotonic() - self.started),
            schema_version=self.service.schema_version,
            durability=self.durability,
            shards=self.service.store.shards.count,
        )

    def MoveShard(self, request: pb.MoveShardRequest, context: Context) -> pb.MoveShardResponse:
        raise FailedPrecondition(
            "this data plane is one process serving every shard: shards move between the "
            "workers of serve --workers"
        )

    def GetShardMap(self, request: pb.GetShardMapRequest, context: Context) -> pb.ShardMap:
        """One process: one worker, owning every shard, at the address called."""
        shards = self.service.store.shards.count
        return pb.ShardMap(epoch=1, shards=shards, workers=[""], owners=[0] * shards)

    def GetMetrics(self, request: pb.GetMetricsRequest, context: Context) -> pb.GetMetricsResponse:
        counts = self.service.counts()
        tokens = counts.tokens
        return pb.GetMetricsResponse(
            sessions=counts.sessions,
            active_sessions=counts.active_sessions,
            nodes_by_kind={kind.value: count for kind, count in counts.nodes.items()},
            edges=counts.edges,
            token_usage=pb.TokenUsage(
                prompt_tokens=tokens.prompt_tokens,
                completion_tokens=tokens.completion_tokens,
                total_tokens=tokens.total_tokens,
            ),
            requests_by_method=self.request_counts(),
            store_size_bytes=self.service.size_bytes(),
        )
