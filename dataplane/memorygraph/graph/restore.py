"""What a restore may write: an export checked as live writes are checked, and kept to its session.

An export can come from anywhere (a file edited by hand, a crafted upload), so before a restore
writes anything, every node (and every node an event holds) passes the limits of live writes
(`graph.limits`: sizes, token ranges, times), every node the rules of its kind (content where
it is required, a tool's name, references that resolve to a prompt, a response or a template),
and every edge and event the shape the graph gives them. Then what the export may touch is
decided: its own nodes, and global nodes (agents, templates) that exist. An edge or event about
a node of another session is left out and counted as skipped, as edges to nodes gone since are:
a restore changes nothing outside the session it brings back.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from memorygraph.errors import InvalidArgument
from memorygraph.graph.export import SessionExport
from memorygraph.graph.limits import Limits
from memorygraph.model import (
    Edge,
    Event,
    Node,
    NodeKind,
    PromptDetails,
    ResponseDetails,
    ToolInvocationDetails,
    format_id,
)

__all__ = ["RestorePlan", "check_export", "plan_restore"]

# The kinds a node's details may refer to, by details field.
_REFERENCES: dict[type, tuple[str, NodeKind]] = {
    ResponseDetails: ("prompt_id", NodeKind.PROMPT),
    ToolInvocationDetails: ("response_id", NodeKind.RESPONSE),
    PromptDetails: ("template_id", NodeKind.TEMPLATE),
}
_NEED_CONTENT = (NodeKind.PROMPT, NodeKind.RESPONSE)


@dataclass(slots=True)
class RestorePlan:
    """What a checked export writes: its edges and events, less those left out."""

    edges: list[Edge] = field(default_factory=list)
    skipped_edges: list[Edge] = field(default_factory=list)  # other end gone, or not ours
    events: list[Event] = field(default_factory=list)
    skipped_events: int = 0  # about a node outside the session


def _fail(what: str, exc: InvalidArgument) -> InvalidArgument:
    return InvalidArgument(f"the export's {what}: {exc}")


def _check_node(limits: Limits, node: Node) -> None:
    """The limits of live writes on a node: its texts, counts and times."""
    limits.check(node.content, node.metadata)
    limits.details(node.details)
    if isinstance(node.details, ResponseDetails):
        limits.tokens(node.details.token_usage, limits.max_tokens)
    limits.time("create_time", node.create_time)
    limits.time("update_time", node.update_time)


def _check_own(limits: Limits, node: Node) -> None:
    """A node the restore writes: the limits, and what its kind requires."""
    _check_node(limits, node)
    if node.kind in _NEED_CONTENT and not node.content.strip():
        raise InvalidArgument(f"content is required for a {node.kind}")
    details = node.details
    if isinstance(details, ToolInvocationDetails) and not details.tool_name:
        raise InvalidArgument("tool_name is required for a tool invocation")


def _check_edge(limits: Limits, edge: Edge) -> None:
    if edge.source_id == edge.target_id:
        raise InvalidArgument("an edge cannot connect a node to itself")
    limits.check(metadata=edge.metadata)
    limits.time("create_time", edge.create_time)


def check_export(export: SessionExport, limits: Limits) -> None:
    """Every record of `export` within the limits and rules of live writes (InvalidArgument
    naming the record otherwise); what needs the graph is `plan_restore`'s business."""
    session = export.session
    for node in [session, *export.nodes]:
        try:
            _check_own(limits, node)
        except InvalidArgument as exc:
            raise _fail(f"{node.kind} {format_id(node.id)}", exc) from None
    for edge in export.edges:
        try:
            _check_edge(limits, edge)
        except InvalidArgument as exc:
            ends = f"{format_id(edge.source_id)} -> {format_id(edge.target_id)}"
            raise _fail(f"edge {ends}", exc) from None
    for event in export.events:
        try:
            limits.time("time", event.time)
            if event.node is not None:
                _check_node(limits, event.node)
            if event.edge is not None:
                _check_edge(limits, event.edge)
        except InvalidArgument as exc:
            raise _fail(f"event {event.sequence}", exc) from None


def _referenced(export: SessionExport) -> set[bytes]:
    """Every id the export names beyond its own nodes: references in details, the other ends
    of edges, the nodes and edges of events."""
    named: set[bytes] = set()
    for node in export.nodes:
        reference = _REFERENCES.get(type(node.details))
        if reference is not None and (target := getattr(node.details, reference[0])) is not None:
            named.add(target)
    for edge in export.edges:
        named.update((edge.source_id, edge.target_id))
    for event in export.events:
        if event.node is not None:
            named.add(event.node.id)
        if event.edge is not None:
            named.update((event.edge.source_id, event.edge.target_id))
    return named


def plan_restore(
    export: SessionExport, lookup: Callable[[list[bytes]], Iterable[Node | None]]
) -> RestorePlan:
    """What of a checked export may be written, given the graph as it is (`lookup` reads
    nodes): InvalidArgument when a node refers to something of the wrong kind or outside the
    session; edges and events that touch another session's nodes are left out."""
    own = {node.id: node for node in [export.session, *export.nodes]}
    wanted = sorted(_referenced(export) - own.keys())
    existing = {
        node_id: node
        for node_id, node in zip(wanted, lookup(wanted), strict=True)
        if node is not None
    }

    def foreign(node_id: bytes) -> bool:
        """Whether the id names a node the restore must not touch: another session's."""
        other = existing.get(node_id)
        return other is not None and not other.kind.is_global

    for node in export.nodes:
        reference = _REFERENCES.get(type(node.details))
        target = getattr(node.details, reference[0]) if reference is not None else None
        if reference is None or target is None:
            continue
        found = own.get(target) or existing.get(target)
        if found is not None and (found.kind is not reference[1] or foreign(target)):
            raise InvalidArgument(
                f"the export's {node.kind} {format_id(node.id)}: {reference[0]} "
                f"{format_id(target)} is not a {reference[1].replace('_', ' ')} of this "
                f"{'graph' if reference[1].is_global else 'session'}"
            )
    plan = RestorePlan()
    for edge in export.edges:
        ends = (edge.source_id, edge.target_id)
        if all(end in own or end in existing for end in ends) and not any(map(foreign, ends)):
            plan.edges.append(edge)
        else:
            plan.skipped_edges.append(edge)
    for event in export.events:
        if _touches(event, foreign):
            plan.skipped_events += 1
        else:
            plan.events.append(event)
    return plan


def _touches(event: Event, foreign: Callable[[bytes], bool]) -> bool:
    if event.node is not None and foreign(event.node.id):
        return True
    edge = event.edge
    return edge is not None and (foreign(edge.source_id) or foreign(edge.target_id))
