"""`MemoryGraphService` servicer: translate each request, call the graph service, translate back.

Errors are not handled here: domain errors propagate to the interceptor in `servicers.errors`,
which maps them to status codes in one place.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from typing import Any

import grpc

from memorygraph import __version__
from memorygraph.errors import InvalidArgument
from memorygraph.graph.query import QueryFilter
from memorygraph.graph.service import GraphService, NewNode
from memorygraph.graph.model import NodeKind
from memorygraph.ids import format_id
from memorygraph.servicers import convert as cv
from memorygraph.store.keys import MAX_TIME
from memorygraph.v1 import graph_pb2 as pb
from memorygraph.v1 import graph_pb2_grpc as pb_grpc

__all__ = ["MemoryGraphServicer"]

Context = grpc.ServicerContext
UPDATABLE_FIELDS = frozenset({"content", "metadata"})


def _query_filter(message: pb.QueryFilter) -> QueryFilter:
    start = cv.micros(message.start_time, 0)
    end = cv.micros(message.end_time, MAX_TIME)
    if end <= start:
        raise InvalidArgument("end_time must be after start_time")
    return QueryFilter(
        session_id=cv.optional_id(message.session_id, "filter.session_id"),
        kinds=cv.node_kinds(message.kinds, "filter.kinds"),
        start_time=start,
        end_time=end,
        metadata=tuple(sorted(message.metadata.items())),
        descending=message.descending,
    )


class MemoryGraphServicer(pb_grpc.MemoryGraphServiceServicer):
    def __init__(
        self,
        service: GraphService,
        *,
        durability: str,
        request_counts: Callable[[], dict[str, int]],
    ) -> None:
        self.service = service
        self.durability = durability
        self.request_counts = request_counts
        self.started = time.monotonic()

    # -- sessions ----------------------------------------------------------------------------

    def CreateSession(self, request: pb.CreateSessionRequest, context: Context) -> pb.Session:
        node = self.service.create_session(
            session_id=cv.optional_id(request.session_id, "session_id"),
            title=request.title,
            user_id=request.user_id,
            agent_id=request.agent_id,
            model=request.model,
            metadata=dict(request.metadata),
        )
        return cv.session_message(node)

    def GetSession(self, request: pb.GetSessionRequest, context: Context) -> pb.Session:
        node = self.service.get_session(cv.node_id(request.session_id, "session_id"))
        return cv.session_message(node)

    def CloseSession(self, request: pb.CloseSessionRequest, context: Context) -> pb.Session:
        node = self.service.close_session(cv.node_id(request.session_id, "session_id"))
        return cv.session_message(node)

    def DeleteSession(
        self, request: pb.DeleteSessionRequest, context: Context
    ) -> pb.DeleteSessionResponse:
        nodes, edges = self.service.delete_session(cv.node_id(request.session_id, "session_id"))
        return pb.DeleteSessionResponse(deleted_nodes=nodes, deleted_edges=edges)

    def ListSessions(
        self, request: pb.ListSessionsRequest, context: Context
    ) -> pb.ListSessionsResponse:
        page = self.service.list_sessions(
            limit=request.limit,
            page_token=request.page_token,
            state=cv.session_state(request.state),
            user_id=request.user_id,
        )
        return pb.ListSessionsResponse(
            sessions=[cv.session_message(n) for n in page.nodes],
            next_page_token=page.next_page_token,
        )

    # -- nodes -------------------------------------------------------------------------------

    @staticmethod
    def _new_node(request: pb.CreateNodeRequest) -> NewNode:
        kind = cv.node_kind(request.kind)
        return NewNode(
            kind=kind,
            session_id=cv.optional_id(request.session_id, "session_id"),
            content=request.content,
            metadata=dict(request.metadata),
            attrs=cv.node_details(request, kind),
            node_id=cv.optional_id(request.node_id, "node_id"),
        )

    def CreateNode(self, request: pb.CreateNodeRequest, context: Context) -> pb.Node:
        return cv.node_message(self.service.create_node(self._new_node(request)))

    def GetNode(self, request: pb.GetNodeRequest, context: Context) -> pb.Node:
        return cv.node_message(self.service.get_node(cv.node_id(request.node_id)))

    def UpdateNode(self, request: pb.UpdateNodeRequest, context: Context) -> pb.Node:
        paths = set(request.update_mask.paths) or set(UPDATABLE_FIELDS)
        unknown = paths - UPDATABLE_FIELDS
        if unknown:
            raise InvalidArgument(
                f"update_mask paths {sorted(unknown)} cannot be updated; use content, metadata"
            )
        node = self.service.update_node(
            cv.node_id(request.node_id),
            content=request.content if "content" in paths else None,
            metadata=dict(request.metadata) if "metadata" in paths else None,
        )
        return cv.node_message(node)

    def DeleteNode(self, request: pb.DeleteNodeRequest, context: Context) -> pb.DeleteNodeResponse:
        edges = self.service.delete_node(cv.node_id(request.node_id))
        return pb.DeleteNodeResponse(deleted_edges=edges)

    def BatchCreateNodes(
        self, request: pb.BatchCreateNodesRequest, context: Context
    ) -> pb.BatchCreateNodesResponse:
        specs = []
        for i, item in enumerate(request.requests):
            try:
                specs.append(self._new_node(item))
            except InvalidArgument as exc:
                raise InvalidArgument(f"requests[{i}]: {exc}") from None
        nodes = self.service.create_nodes(specs)
        return pb.BatchCreateNodesResponse(nodes=[cv.node_message(n) for n in nodes])

    def BatchGetNodes(
        self, request: pb.BatchGetNodesRequest, context: Context
    ) -> pb.BatchGetNodesResponse:
        ids = [cv.node_id(text, f"node_ids[{i}]") for i, text in enumerate(request.node_ids)]
        found, missing = self.service.get_nodes(ids)
        return pb.BatchGetNodesResponse(
            nodes=[cv.node_message(n) for n in found],
            missing_ids=[format_id(m) for m in missing],
        )

    # -- edges -------------------------------------------------------------------------------

    def CreateEdge(self, request: pb.CreateEdgeRequest, context: Context) -> pb.Edge:
        edge = self.service.create_edge(
            cv.node_id(request.source_id, "source_id"),
            cv.node_id(request.target_id, "target_id"),
            cv.edge_kind(request.kind),
            dict(request.metadata),
        )
        return cv.edge_message(edge)

    def GetEdges(self, request: pb.GetEdgesRequest, context: Context) -> pb.GetEdgesResponse:
        edges = self.service.get_edges(
            cv.node_id(request.node_id),
            cv.direction(request.direction),
            cv.edge_kinds(request.kinds),
        )
        return pb.GetEdgesResponse(edges=[cv.edge_message(e) for e in edges])

    def DeleteEdge(self, request: pb.DeleteEdgeRequest, context: Context) -> pb.DeleteEdgeResponse:
        self.service.delete_edge(
            cv.node_id(request.source_id, "source_id"),
            cv.node_id(request.target_id, "target_id"),
            cv.edge_kind(request.kind),
        )
        return pb.DeleteEdgeResponse()

    # -- queries -----------------------------------------------------------------------------

    def Query(self, request: pb.QueryRequest, context: Context) -> pb.QueryResponse:
        page = self.service.query(
            _query_filter(request.filter), limit=request.limit, page_token=request.page_token
        )
        return pb.QueryResponse(
            nodes=[cv.node_message(n) for n in page.nodes], next_page_token=page.next_page_token
        )

    def StreamQuery(
        self, request: pb.StreamQueryRequest, context: Context
    ) -> Iterator[pb.QueryBatch]:
        batches = self.service.stream_query(
            _query_filter(request.filter), batch_size=request.batch_size, limit=request.limit
        )
        for batch in batches:
            if not context.is_active():
                return
            yield pb.QueryBatch(nodes=[cv.node_message(n) for n in batch])

    def Traverse(self, request: pb.TraverseRequest, context: Context) -> pb.TraverseResponse:
        result = self.service.traverse(
            cv.node_id(request.start_node_id, "start_node_id"),
            edge_kinds=cv.edge_kinds(request.edge_kinds, "edge_kinds"),
            direction=cv.direction(request.direction),
            max_depth=request.max_depth,
            max_nodes=request.max_nodes,
        )
        return pb.TraverseResponse(
            nodes=[pb.TraversedNode(node=cv.node_message(n), depth=d) for n, d in result.nodes],
            edges=[cv.edge_message(e) for e in result.edges],
            truncated=result.truncated,
        )

    # -- LLM turns ---------------------------------------------------------------------------

    def AddPrompt(self, request: pb.AddPromptRequest, context: Context) -> pb.Node:
        node = self.service.add_prompt(
            cv.node_id(request.session_id, "session_id"),
            request.content,
            **_present(model=request.model, role=request.role),
            metadata=dict(request.metadata),
        )
        return cv.node_message(node)

    def AddResponse(self, request: pb.AddResponseRequest, context: Context) -> pb.Node:
        usage = request.token_usage
        node = self.service.add_response(
            cv.node_id(request.prompt_id, "prompt_id"),
            request.content,
            **_present(
                model=request.model,
                prompt_tokens=usage.prompt_tokens,
                completion_tokens=usage.completion_tokens,
                total_tokens=usage.total_tokens,
                finish_reason=request.finish_reason,
                latency_ms=request.latency_ms,
            ),
            metadata=dict(request.metadata),
        )
        return cv.node_message(node)

    def AddToolInvocation(
        self, request: pb.AddToolInvocationRequest, context: Context
    ) -> pb.Node:
        node = self.service.add_tool_invocation(
            cv.node_id(request.response_id, "response_id"),
            request.tool_name,
            **_present(
                arguments=request.arguments,
                result=request.result,
                status=cv.tool_status(request.status),
                duration_ms=request.duration_ms,
            ),
            metadata=dict(request.metadata),
        )
        return cv.node_message(node)

    # -- templates ---------------------------------------------------------------------------

    def CreateTemplate(self, request: pb.CreateTemplateRequest, context: Context) -> pb.Template:
        node = self.service.create_template(
            name=request.name,
            content=request.content,
            variables=cv.template_variables(request.variables),
            metadata=dict(request.metadata),
            template_id=cv.optional_id(request.template_id, "template_id"),
        )
        return cv.template_message(node)

    def GetTemplate(self, request: pb.GetTemplateRequest, context: Context) -> pb.Template:
        node = self.service.get_template(
            template_id=cv.optional_id(request.template_id, "template_id"), name=request.name
        )
        return cv.template_message(node)

    def InstantiateTemplate(
        self, request: pb.InstantiateTemplateRequest, context: Context
    ) -> pb.InstantiateTemplateResponse:
        content, prompt = self.service.instantiate_template(
            template_id=cv.optional_id(request.template_id, "template_id"),
            name=request.name,
            values=dict(request.variables),
            session_id=cv.optional_id(request.session_id, "session_id"),
            prompt_attrs=_present(model=request.model, role=request.role),
            metadata=dict(request.metadata),
        )
        response = pb.InstantiateTemplateResponse(content=content)
        if prompt is not None:
            response.prompt.CopyFrom(cv.node_message(prompt))
        return response

    # -- operations --------------------------------------------------------------------------

    def Health(self, request: pb.HealthRequest, context: Context) -> pb.HealthResponse:
        return pb.HealthResponse(
            status=pb.HealthResponse.STATUS_SERVING,
            version=__version__,
            uptime_seconds=int(time.monotonic() - self.started),
            schema_version=self.service.store.schema_version,
            durability=self.durability,
        )

    def GetMetrics(self, request: pb.GetMetricsRequest, context: Context) -> pb.GetMetricsResponse:
        counters = self.service.store.counters()
        return pb.GetMetricsResponse(
            sessions=counters[f"nodes/{NodeKind.SESSION.value}"],
            active_sessions=counters["sessions_active"],
            nodes_by_kind={k.value: counters[f"nodes/{k.value}"] for k in NodeKind},
            edges=counters["edges"],
            token_usage=pb.TokenUsage(
                prompt_tokens=counters["tokens/prompt"],
                completion_tokens=counters["tokens/completion"],
                total_tokens=counters["tokens/total"],
            ),
            requests_by_method=self.request_counts(),
            store_size_bytes=self.service.store.size_bytes(),
        )


def _present(**fields: Any) -> dict[str, Any]:
    """The fields a request actually set (proto3 scalars are empty/zero when unset)."""
    return {k: v for k, v in fields.items() if v not in ("", 0)}
