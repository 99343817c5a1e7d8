"""The graph service's hook points, served by the plugin pipeline.

`PluginHooks` is the `GraphHooks` the server gives the graph service when plugins are
configured: at each point it builds the `HookCall` plugins see (ids as text, details in their
plain-data form), runs the pipeline's plugins for that hook — skipping all the work when none
is configured for it — and hands what the before-hooks left back to the service. Automatic
edges (belongs_to, follows, …) are part of creating their node and get no hooks of their own;
the nodes DeleteSession removes are reported by after_delete_session, not one by one.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from typing import Any

from memorygraph.graph.hooks import GraphHooks, Instantiation, Read
from memorygraph.model import (
    Edge,
    NewEdge,
    NewNode,
    NewSession,
    Node,
    ResponseDetails,
    TemplateDetails,
    ToolInvocationDetails,
    details_fields,
    details_texts,
    format_id,
    with_texts,
)
from memorygraph.plugins.calls import HookCall, PluginRejected
from memorygraph.plugins.pipeline import PluginPipeline
from memorygraph.plugins.reload import PluginManager
from memorygraph.plugins.schema import Hook

__all__ = ["PluginHooks"]


def _text(node_id: bytes | None) -> str:
    return format_id(node_id) if node_id else ""


def _node_call(hook: Hook, node: Node, **details: Any) -> HookCall:
    return HookCall(
        hook,
        node.kind.value,
        session_id=_text(node.session_id),
        node_id=format_id(node.id),
        content=node.content,
        metadata=dict(node.metadata),
        details=details or details_fields(node.details),
        texts=details_texts(node.details),
    )


def _session_texts(spec: NewSession) -> dict[str, str]:
    return {"user_id": spec.user_id, "agent_id": spec.agent_id, "model": spec.model}


def _edge_call(hook: Hook, edge: Edge, session_id: bytes | None) -> HookCall:
    return HookCall(
        hook,
        "edge",
        session_id=_text(session_id),
        metadata=dict(edge.metadata),
        details={
            "source_id": format_id(edge.source_id),
            "target_id": format_id(edge.target_id),
            "kind": edge.kind.value,
        },
    )


def _read_call(hook: Hook, read: Read, **extra: Any) -> HookCall:
    details: dict[str, Any] = {"read": read.name}
    metadata: dict[str, str] = {}
    if read.query is not None:
        query = read.query
        metadata = dict(query.metadata)
        details |= {
            "kinds": sorted(k.value for k in query.kinds),
            "start_time": query.start_time,
            "end_time": query.end_time,
            "descending": query.descending,
        }
    if read.node_ids:
        details["node_ids"] = [format_id(n) for n in read.node_ids]
    if read.session_ids:
        details["session_ids"] = [format_id(s) for s in read.session_ids]
    return HookCall(
        hook,
        "query",
        session_id=_text(read.session_id),
        metadata=metadata,
        details=details | read.options | extra,
    )


class PluginHooks(GraphHooks):
    """`plugins.pipeline` at every hook point; `lookup` reads a node (the session a new node
    or edge lands in is known before the write only through its parent)."""

    def __init__(self, plugins: PluginManager, lookup: Callable[[bytes], Node | None]) -> None:
        self.plugins = plugins
        self.lookup = lookup

    @property
    def pipeline(self) -> PluginPipeline:
        return self.plugins.pipeline

    def _after(self, hook: Hook, make: Callable[[], HookCall]) -> None:
        pipeline = self.pipeline
        if pipeline.wants(hook):
            pipeline.after(make())

    def _session_of(self, spec: NewNode) -> bytes | None:
        """The session a new node will land in, for plugins that need it before the write."""
        if spec.session_id is not None:
            return spec.session_id
        details = spec.details
        parent = None
        if isinstance(details, ResponseDetails):
            parent = details.prompt_id
        elif isinstance(details, ToolInvocationDetails):
            parent = details.response_id
        node = self.lookup(parent) if parent is not None else None
        return node.session_id if node is not None else None

    # -- sessions ----------------------------------------------------------------------------

    def before_create_session(self, spec: NewSession) -> NewSession:
        pipeline = self.pipeline
        if not pipeline.wants(Hook.BEFORE_CREATE_SESSION):
            return spec
        texts = _session_texts(spec)
        call = pipeline.before(
            HookCall(
                Hook.BEFORE_CREATE_SESSION,
                "session",
                session_id=_text(spec.session_id),
                content=spec.title,
                metadata=dict(spec.metadata),
                details=dict(texts),
                texts=texts,
            )
        )
        left = call.texts
        return replace(
            spec,
            title=call.content or "",
            metadata=call.metadata,
            user_id=left.get("user_id", spec.user_id),
            agent_id=left.get("agent_id", spec.agent_id),
            model=left.get("model", spec.model),
        )

    def after_create_session(self, session: Node) -> None:
        self._after(
            Hook.AFTER_CREATE_SESSION, lambda: _node_call(Hook.AFTER_CREATE_SESSION, session)
        )

    def before_close_session(self, session_id: bytes) -> None:
        pipeline = self.pipeline
        if pipeline.wants(Hook.BEFORE_CLOSE_SESSION):
            pipeline.before(
                HookCall(Hook.BEFORE_CLOSE_SESSION, "session", session_id=format_id(session_id))
            )

    def after_close_session(self, session: Node) -> None:
        self._after(Hook.AFTER_CLOSE_SESSION, lambda: _node_call(Hook.AFTER_CLOSE_SESSION, session))

    def before_delete_session(self, session_id: bytes) -> None:
        pipeline = self.pipeline
        if pipeline.wants(Hook.BEFORE_DELETE_SESSION):
            pipeline.before(
                HookCall(Hook.BEFORE_DELETE_SESSION, "session", session_id=format_id(session_id))
            )

    def after_delete_session(self, session_id: bytes, nodes: int, edges: int) -> None:
        self._after(
            Hook.AFTER_DELETE_SESSION,
            lambda: HookCall(
                Hook.AFTER_DELETE_SESSION,
                "session",
                session_id=format_id(session_id),
                details={"deleted_nodes": nodes, "deleted_edges": edges},
            ),
        )

    # -- nodes -------------------------------------------------------------------------------

    def before_create_node(self, spec: NewNode) -> NewNode:
        pipeline = self.pipeline
        if not pipeline.wants(Hook.BEFORE_CREATE_NODE):
            return spec
        texts = details_texts(spec.given_details)
        call = pipeline.before(
            HookCall(
                Hook.BEFORE_CREATE_NODE,
                spec.kind.value,
                session_id=_text(self._session_of(spec)),
                node_id=_text(spec.node_id),
                content=spec.content,
                metadata=dict(spec.metadata),
                details=details_fields(spec.details, sparse=True) if spec.details else {},
                texts=dict(texts),
            )
        )
        content = call.content or ""
        changed = call.texts != texts
        if content == spec.content and call.metadata == spec.metadata and not changed:
            return spec  # most calls: the plugins left them as they were
        details = with_texts(spec.given_details, call.texts) if changed else spec.details
        return replace(spec, content=content, metadata=call.metadata, details=details)

    def after_create_node(self, node: Node) -> None:
        self._after(Hook.AFTER_CREATE_NODE, lambda: _node_call(Hook.AFTER_CREATE_NODE, node))

    @property
    def watches_updates(self) -> bool:
        return self.pipeline.wants(Hook.BEFORE_UPDATE_NODE)

    def before_update_node(
        self, current: Node, content: str | None, metadata: dict[str, str] | None
    ) -> tuple[str | None, dict[str, str] | None]:
        pipeline = self.pipeline
        if not pipeline.wants(Hook.BEFORE_UPDATE_NODE):
            return content, metadata
        call = pipeline.before(
            HookCall(
                Hook.BEFORE_UPDATE_NODE,
                current.kind.value,
                session_id=_text(current.session_id),
                node_id=format_id(current.id),
                content=content,
                metadata=dict(current.metadata if metadata is None else metadata),
                details=details_fields(current.details),
            )
        )
        if metadata is not None or call.metadata != current.metadata:
            metadata = call.metadata
        return call.content, metadata

    def after_update_node(self, node: Node) -> None:
        self._after(Hook.AFTER_UPDATE_NODE, lambda: _node_call(Hook.AFTER_UPDATE_NODE, node))

    def before_delete_node(self, node: Node) -> None:
        pipeline = self.pipeline
        if pipeline.wants(Hook.BEFORE_DELETE_NODE):
            pipeline.before(_node_call(Hook.BEFORE_DELETE_NODE, node))

    def after_delete_node(self, node: Node, edges: int) -> None:
        self._after(
            Hook.AFTER_DELETE_NODE,
            lambda: _node_call(Hook.AFTER_DELETE_NODE, node, deleted_edges=edges),
        )

    # -- edges -------------------------------------------------------------------------------

    def before_create_edge(self, spec: NewEdge) -> NewEdge:
        pipeline = self.pipeline
        if not pipeline.wants(Hook.BEFORE_CREATE_EDGE):
            return spec
        source = self.lookup(spec.source_id)
        edge = Edge(spec.source_id, spec.target_id, spec.kind, dict(spec.metadata))
        call = _edge_call(Hook.BEFORE_CREATE_EDGE, edge, source.session_id if source else None)
        return replace(spec, metadata=pipeline.before(call).metadata)

    def after_create_edge(self, edge: Edge) -> None:
        self._after(Hook.AFTER_CREATE_EDGE, lambda: _edge_call(Hook.AFTER_CREATE_EDGE, edge, None))

    def before_delete_edge(self, edge: Edge) -> None:
        pipeline = self.pipeline
        if pipeline.wants(Hook.BEFORE_DELETE_EDGE):
            pipeline.before(_edge_call(Hook.BEFORE_DELETE_EDGE, edge, None))

    def after_delete_edge(self, edge: Edge) -> None:
        self._after(Hook.AFTER_DELETE_EDGE, lambda: _edge_call(Hook.AFTER_DELETE_EDGE, edge, None))

    # -- templates ---------------------------------------------------------------------------

    @staticmethod
    def _template_call(hook: Hook, call: Instantiation) -> HookCall:
        return HookCall(
            hook,
            "template",
            session_id=_text(call.session_id),
            node_id=format_id(call.template.id),
            content=call.content,
            metadata=dict(call.metadata),
            details={
                "name": call.template.details_as(TemplateDetails).name,
                "variables": dict(call.values),
            },
        )

    def before_instantiate_template(self, call: Instantiation) -> Instantiation:
        pipeline = self.pipeline
        if not pipeline.wants(Hook.BEFORE_INSTANTIATE_TEMPLATE):
            return call
        seen = pipeline.before(self._template_call(Hook.BEFORE_INSTANTIATE_TEMPLATE, call))
        return replace(call, content=seen.content or "", metadata=seen.metadata)

    def after_instantiate_template(self, call: Instantiation) -> None:
        hook = Hook.AFTER_INSTANTIATE_TEMPLATE
        self._after(hook, lambda: self._template_call(hook, call))

    # -- reads -------------------------------------------------------------------------------

    @property
    def watches_reads(self) -> bool:
        pipeline = self.pipeline
        return pipeline.wants(Hook.BEFORE_QUERY) or pipeline.wants(Hook.AFTER_QUERY)

    def before_read(self, read: Read) -> None:
        pipeline = self.pipeline
        if pipeline.wants(Hook.BEFORE_QUERY):
            pipeline.before(_read_call(Hook.BEFORE_QUERY, read))

    def after_read(self, read: Read, returned: int) -> None:
        self._after(Hook.AFTER_QUERY, lambda: _read_call(Hook.AFTER_QUERY, read, returned=returned))

    # -- archival ----------------------------------------------------------------------------

    def before_archive(self, session: Node) -> None:
        pipeline = self.pipeline
        if not pipeline.wants(Hook.BEFORE_ARCHIVE):
            return
        call = HookCall(
            Hook.BEFORE_ARCHIVE,
            "archive",
            session_id=format_id(session.id),
            metadata=dict(session.metadata),
            details=details_fields(session.details),
        )
        try:
            pipeline.before(call)
        except PluginRejected as exc:
            # Whatever the plugin's usual status, a refused archival means "not now" for
            # this session: the archive job skips it rather than failing.
            raise PluginRejected(exc.plugin, exc.reason) from None

    def after_archive(
        self, session: Node, *, content_sha256: str, nodes: int, edges: int, events: int
    ) -> None:
        self._after(
            Hook.AFTER_ARCHIVE,
            lambda: HookCall(
                Hook.AFTER_ARCHIVE,
                "archive",
                session_id=format_id(session.id),
                metadata=dict(session.metadata),
                details={
                    "content_sha256": content_sha256,
                    "nodes": nodes,
                    "edges": edges,
                    "events": events,
                },
            ),
        )
