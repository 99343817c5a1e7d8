"""The graph service with plugin hooks around every write, query and instantiation.

Before-hooks run before the write transaction (never under the writer lock: a webhook may take
its whole timeout), on what the caller sent; what they leave is what gets written. After-hooks
run once the change is durable. Automatic edges (belongs_to, follows, …) are part of creating
their node and get no hooks of their own; nodes removed by DeleteSession's cascade are reported
by after_delete_session, not one by one.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from typing import Any

from memorygraph.graph.export import SessionExport
from memorygraph.graph.model import Edge, EdgeKind, Node, NodeKind
from memorygraph.graph.query import QueryFilter, RecordPage
from memorygraph.graph.service import GraphService, IngestItem, NewEdge, NewNode, NewSession
from memorygraph.ids import format_id
from memorygraph.plugins.hooks import HookCall, PluginRejected
from memorygraph.plugins.pipeline import PluginPipeline
from memorygraph.plugins.reload import PluginManager
from memorygraph.plugins.schema import Hook

__all__ = ["HookedGraphService"]


def _ids(values: dict[str, Any]) -> dict[str, Any]:
    """Plugin-facing copy of attributes: ids as text."""
    return {k: format_id(v) if isinstance(v, bytes) else v for k, v in values.items()}


def _node_call(hook: Hook, node: Node) -> HookCall:
    return HookCall(
        hook,
        node.kind.value,
        session_id=format_id(node.session_id) if node.session_id else "",
        node_id=format_id(node.id),
        content=node.content,
        metadata=dict(node.metadata),
        details=_ids(node.attrs),
    )


def _edge_call(hook: Hook, edge: Edge, session_id: bytes | None) -> HookCall:
    return HookCall(
        hook,
        "edge",
        session_id=format_id(session_id) if session_id else "",
        metadata=dict(edge.metadata),
        details={
            "source_id": format_id(edge.source_id),
            "target_id": format_id(edge.target_id),
            "kind": edge.kind.value,
        },
    )


class HookedGraphService(GraphService):
    def __init__(self, *args: Any, plugins: PluginManager, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.plugins = plugins

    @property
    def pipeline(self) -> PluginPipeline:
        return self.plugins.pipeline

    # -- helpers -----------------------------------------------------------------------------

    def _session_of(self, spec: NewNode) -> bytes | None:
        """The session a new node will land in, for plugins that need it before the write."""
        if spec.session_id is not None:
            return spec.session_id
        parent = spec.attrs.get("prompt_id") or spec.attrs.get("response_id")
        if isinstance(parent, bytes):
            node = self.store.get_node(parent)
            return node.session_id if node is not None else None
        return None

    def _before_node(self, pipeline: PluginPipeline, spec: NewNode) -> NewNode:
        if not pipeline.wants(Hook.BEFORE_CREATE_NODE):
            return spec
        session = self._session_of(spec)
        call = pipeline.before(
            HookCall(
                Hook.BEFORE_CREATE_NODE,
                spec.kind.value,
                session_id=format_id(session) if session else "",
                node_id=format_id(spec.node_id) if spec.node_id else "",
                content=spec.content,
                metadata=dict(spec.metadata),
                details=_ids(spec.attrs),
            )
        )
        content = call.content or ""
        if content == spec.content and call.metadata == spec.metadata:
            return spec  # most calls: the plugins left them as they were
        return replace(spec, content=content, metadata=call.metadata)

    def _before_session(self, pipeline: PluginPipeline, spec: NewSession) -> NewSession:
        if not pipeline.wants(Hook.BEFORE_CREATE_SESSION):
            return spec
        call = pipeline.before(
            HookCall(
                Hook.BEFORE_CREATE_SESSION,
                "session",
                session_id=format_id(spec.session_id) if spec.session_id else "",
                content=spec.title,
                metadata=dict(spec.metadata),
                details={"user_id": spec.user_id, "agent_id": spec.agent_id, "model": spec.model},
            )
        )
        return replace(spec, title=call.content or "", metadata=call.metadata)

    def _before_edge(self, pipeline: PluginPipeline, spec: NewEdge) -> NewEdge:
        if not pipeline.wants(Hook.BEFORE_CREATE_EDGE):
            return spec
        source = self.store.get_node(spec.source_id)
        edge = Edge(spec.source_id, spec.target_id, spec.kind, dict(spec.metadata))
        call = _edge_call(Hook.BEFORE_CREATE_EDGE, edge, source.session_id if source else None)
        return replace(spec, metadata=pipeline.before(call).metadata)

    def _after(self, pipeline: PluginPipeline, hook: Hook, make: Any) -> None:
        if pipeline.wants(hook):
            pipeline.after(make())

    # -- sessions ----------------------------------------------------------------------------

    def create_session(self, spec: NewSession) -> Node:
        pipeline = self.pipeline
        session = super().create_session(self._before_session(pipeline, spec))
        self._after(
            pipeline,
            Hook.AFTER_CREATE_SESSION,
            lambda: _node_call(Hook.AFTER_CREATE_SESSION, session),
        )
        return session

    def close_session(self, session_id: bytes) -> Node:
        pipeline = self.pipeline
        if pipeline.wants(Hook.BEFORE_CLOSE_SESSION):
            pipeline.before(
                HookCall(Hook.BEFORE_CLOSE_SESSION, "session", session_id=format_id(session_id))
            )
        session = super().close_session(session_id)
        self._after(
            pipeline,
            Hook.AFTER_CLOSE_SESSION,
            lambda: _node_call(Hook.AFTER_CLOSE_SESSION, session),
        )
        return session

    def delete_session(self, session_id: bytes) -> tuple[int, int]:
        pipeline = self.pipeline
        call = HookCall(Hook.BEFORE_DELETE_SESSION, "session", session_id=format_id(session_id))
        if pipeline.wants(Hook.BEFORE_DELETE_SESSION):
            pipeline.before(call)
        nodes, edges = super().delete_session(session_id)
        self._after(
            pipeline,
            Hook.AFTER_DELETE_SESSION,
            lambda: replace(
                call,
                hook=Hook.AFTER_DELETE_SESSION,
                details={"deleted_nodes": nodes, "deleted_edges": edges},
            ),
        )
        return nodes, edges

    # -- nodes -------------------------------------------------------------------------------

    def create_nodes(self, specs: list[NewNode]) -> list[Node]:
        pipeline = self.pipeline
        nodes = super().create_nodes([self._before_node(pipeline, s) for s in specs])
        for node in nodes:
            self._after(
                pipeline,
                Hook.AFTER_CREATE_NODE,
                lambda n=node: _node_call(Hook.AFTER_CREATE_NODE, n),
            )
        return nodes

    def update_node(
        self, node_id: bytes, *, content: str | None, metadata: dict[str, str] | None
    ) -> Node:
        pipeline = self.pipeline
        if pipeline.wants(Hook.BEFORE_UPDATE_NODE):
            current = self.get_node(node_id)
            call = pipeline.before(
                HookCall(
                    Hook.BEFORE_UPDATE_NODE,
                    current.kind.value,
                    session_id=format_id(current.session_id) if current.session_id else "",
                    node_id=format_id(node_id),
                    content=content,
                    metadata=dict(current.metadata if metadata is None else metadata),
                    details=_ids(current.attrs),
                )
            )
            content = call.content
            if metadata is not None or call.metadata != current.metadata:
                metadata = call.metadata
        node = super().update_node(node_id, content=content, metadata=metadata)
        self._after(
            pipeline, Hook.AFTER_UPDATE_NODE, lambda: _node_call(Hook.AFTER_UPDATE_NODE, node)
        )
        return node

    def delete_node(self, node_id: bytes) -> int:
        pipeline = self.pipeline
        node = self.store.get_node(node_id)
        if node is not None and pipeline.wants(Hook.BEFORE_DELETE_NODE):
            pipeline.before(_node_call(Hook.BEFORE_DELETE_NODE, node))
        edges = super().delete_node(node_id)
        if node is not None:
            self._after(
                pipeline,
                Hook.AFTER_DELETE_NODE,
                lambda: replace(
                    _node_call(Hook.AFTER_DELETE_NODE, node), details={"deleted_edges": edges}
                ),
            )
        return edges

    def ingest(self, items: list[IngestItem]) -> tuple[int, list[Node | Edge]]:
        pipeline = self.pipeline
        prepared: list[IngestItem] = []
        for item in items:
            if isinstance(item, NewSession):
                prepared.append(self._before_session(pipeline, item))
            elif isinstance(item, NewNode):
                prepared.append(self._before_node(pipeline, item))
            else:
                prepared.append(self._before_edge(pipeline, item))
        sequence, created = super().ingest(prepared)
        for thing in created:
            if isinstance(thing, Edge):
                self._after(
                    pipeline,
                    Hook.AFTER_CREATE_EDGE,
                    lambda e=thing: _edge_call(Hook.AFTER_CREATE_EDGE, e, None),
                )
            elif thing.kind is NodeKind.SESSION:
                self._after(
                    pipeline,
                    Hook.AFTER_CREATE_SESSION,
                    lambda n=thing: _node_call(Hook.AFTER_CREATE_SESSION, n),
                )
            else:
                self._after(
                    pipeline,
                    Hook.AFTER_CREATE_NODE,
                    lambda n=thing: _node_call(Hook.AFTER_CREATE_NODE, n),
                )
        return sequence, created

    # -- edges -------------------------------------------------------------------------------

    def create_edge(self, spec: NewEdge) -> Edge:
        pipeline = self.pipeline
        edge = super().create_edge(self._before_edge(pipeline, spec))
        self._after(
            pipeline, Hook.AFTER_CREATE_EDGE, lambda: _edge_call(Hook.AFTER_CREATE_EDGE, edge, None)
        )
        return edge

    def delete_edge(self, source_id: bytes, target_id: bytes, kind: EdgeKind) -> None:
        pipeline = self.pipeline
        edge = Edge(source_id, target_id, kind)
        if pipeline.wants(Hook.BEFORE_DELETE_EDGE):
            pipeline.before(_edge_call(Hook.BEFORE_DELETE_EDGE, edge, None))
        super().delete_edge(source_id, target_id, kind)
        self._after(
            pipeline, Hook.AFTER_DELETE_EDGE, lambda: _edge_call(Hook.AFTER_DELETE_EDGE, edge, None)
        )

    # -- templates ---------------------------------------------------------------------------

    def instantiate_template(
        self,
        *,
        template_id: bytes | None,
        name: str,
        values: dict[str, str],
        session_id: bytes | None,
        prompt_attrs: dict[str, Any],
        metadata: dict[str, str],
    ) -> tuple[str, Node | None]:
        pipeline = self.pipeline
        template, content = self.render_template(template_id=template_id, name=name, values=values)
        call = HookCall(
            Hook.BEFORE_INSTANTIATE_TEMPLATE,
            "template",
            session_id=format_id(session_id) if session_id else "",
            node_id=format_id(template.id),
            content=content,
            metadata=dict(metadata),
            details={"name": template.attrs["name"], "variables": dict(values)},
        )
        if pipeline.wants(Hook.BEFORE_INSTANTIATE_TEMPLATE):
            call = pipeline.before(call)
            content, metadata = call.content or "", call.metadata
        if session_id is not None:
            spec = self._before_node(
                pipeline,
                NewNode(
                    NodeKind.PROMPT,
                    session_id,
                    content,
                    metadata,
                    {**prompt_attrs, "template_id": template.id},
                ),
            )
            content, metadata = spec.content, spec.metadata
        prompt = self.record_instantiation(
            template,
            content,
            session_id=session_id,
            prompt_attrs=prompt_attrs,
            metadata=metadata,
        )
        self._after(
            pipeline,
            Hook.AFTER_INSTANTIATE_TEMPLATE,
            lambda: replace(call, hook=Hook.AFTER_INSTANTIATE_TEMPLATE, content=content),
        )
        if prompt is not None:
            self._after(
                pipeline, Hook.AFTER_CREATE_NODE, lambda: _node_call(Hook.AFTER_CREATE_NODE, prompt)
            )
        return content, prompt

    # -- queries -----------------------------------------------------------------------------

    def _query_call(self, hook: Hook, query: QueryFilter, **details: Any) -> HookCall:
        return HookCall(
            hook,
            "query",
            session_id=format_id(query.session_id) if query.session_id else "",
            metadata=dict(query.metadata),
            details={
                "kinds": sorted(k.value for k in query.kinds),
                "start_time": query.start_time,
                "end_time": query.end_time,
                "descending": query.descending,
                **details,
            },
        )

    def query(self, query: QueryFilter, *, limit: int, page_token: str) -> RecordPage:
        pipeline = self.pipeline
        if pipeline.wants(Hook.BEFORE_QUERY):
            pipeline.before(self._query_call(Hook.BEFORE_QUERY, query, limit=limit))
        page = super().query(query, limit=limit, page_token=page_token)
        self._after(
            pipeline,
            Hook.AFTER_QUERY,
            lambda: self._query_call(
                Hook.AFTER_QUERY, query, limit=limit, returned=len(page.records)
            ),
        )
        return page

    def stream_query(
        self, query: QueryFilter, *, batch_size: int, limit: int
    ) -> Iterator[list[bytes]]:
        pipeline = self.pipeline
        if pipeline.wants(Hook.BEFORE_QUERY):
            pipeline.before(self._query_call(Hook.BEFORE_QUERY, query, limit=limit, stream=True))
        returned = 0
        for batch in super().stream_query(query, batch_size=batch_size, limit=limit):
            returned += len(batch)
            yield batch
        self._after(
            pipeline,
            Hook.AFTER_QUERY,
            lambda: self._query_call(
                Hook.AFTER_QUERY, query, limit=limit, stream=True, returned=returned
            ),
        )

    # -- archival ----------------------------------------------------------------------------

    def export_for_archive(self, session_id: bytes) -> SessionExport:
        pipeline = self.pipeline
        if pipeline.wants(Hook.BEFORE_ARCHIVE):
            session = self.get_session(session_id)
            call = HookCall(
                Hook.BEFORE_ARCHIVE,
                "archive",
                session_id=format_id(session_id),
                metadata=dict(session.metadata),
                details=_ids(session.attrs),
            )
            try:
                pipeline.before(call)
            except PluginRejected as exc:
                # Whatever the plugin's usual status, a refused archival means "not now" for
                # this session: the archive job skips it rather than failing.
                raise PluginRejected(exc.plugin, exc.reason) from None
        return super().export_for_archive(session_id)

    def archive_session(
        self, session_id: bytes, *, content_sha256: str, undelivered_from: int | None = None
    ) -> SessionExport:
        export = super().archive_session(
            session_id, content_sha256=content_sha256, undelivered_from=undelivered_from
        )
        self._after(
            self.pipeline,
            Hook.AFTER_ARCHIVE,
            lambda: HookCall(
                Hook.AFTER_ARCHIVE,
                "archive",
                session_id=format_id(session_id),
                metadata=dict(export.session.metadata),
                details={
                    "content_sha256": content_sha256,
                    "nodes": len(export.nodes),
                    "edges": len(export.edges),
                    "events": len(export.events),
                },
            ),
        )
        return export
