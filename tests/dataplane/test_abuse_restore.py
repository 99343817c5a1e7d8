"""Crafted exports: a restore checks what it writes as live writes are checked (limits, kinds,
references, token ranges, times) and touches nothing outside the session it brings back — no
edge to another session's node, no event about one in the holes of the event log."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace

import pytest
from memorygraph.client import Client
from memorygraph.errors import InvalidArgument
from memorygraph.graph.export import SessionExport, decode_export
from memorygraph.graph.service import GraphService
from memorygraph.model import (
    Direction,
    Edge,
    EdgeKind,
    Event,
    EventType,
    NewNode,
    NewSession,
    Node,
    NodeKind,
    PromptDetails,
    ResponseDetails,
    TokenUsage,
    ToolInvocationDetails,
)
from memorygraph.server import RunningServer
from memorygraph.store import GraphStore, MemoryStore

Start = Callable[..., RunningServer]


@dataclass
class Archived:
    """A graph with a session archived (its export in hand) and another session that stays."""

    service: GraphService
    export: SessionExport
    other_prompt: Node

    def node(self, kind: NodeKind) -> Node:
        return next(n for n in self.export.nodes if n.kind is kind)

    def with_node(self, old: Node, new: Node) -> SessionExport:
        return replace(self.export, nodes=[new if n is old else n for n in self.export.nodes])

    def restore(self, export: SessionExport) -> object:
        """Restore `export` as a client would send it: as bytes."""
        return self.service.archive.restore_session(decode_export(export.encode()))

    def untouched(self) -> None:
        """Nothing of the archived session is back, and the other session is as it was."""
        store = self.service.store
        assert store.get_node(self.export.session.id) is None
        assert not [n for n in self.export.nodes if store.get_node(n.id) is not None]
        other = self.other_prompt.id
        assert [e.kind for e in store.edges(other, Direction.BOTH)] == [EdgeKind.BELONGS_TO]


@pytest.fixture
def archived() -> Iterator[Archived]:
    service = GraphService(GraphStore(MemoryStore()))
    other = service.create_session(NewSession(title="other"))
    other_prompt = service.create_node(NewNode(NodeKind.PROMPT, other.id, "theirs"))
    session = service.create_session(NewSession(title="mine", user_id="u"))
    prompt = service.create_node(NewNode(NodeKind.PROMPT, session.id, "q", {"k": "v"}))
    response = service.create_node(
        NewNode(NodeKind.RESPONSE, content="a", details=ResponseDetails(prompt.id))
    )
    service.create_node(
        NewNode(
            NodeKind.TOOL_INVOCATION,
            details=ToolInvocationDetails(response_id=response.id, tool_name="search"),
        )
    )
    export = service.archive.export_session(session.id)
    service.archive.archive_session(session.id, content_sha256=export.sha256())
    yield Archived(service, export, other_prompt)


def test_the_untouched_export_restores(archived: Archived) -> None:
    result = archived.restore(archived.export)
    assert (result.nodes, result.skipped_events) == (4, 0)  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    ("craft", "message"),
    [
        (lambda a, p: replace(p, content="x" * ((1 << 20) + 1)), "content is 1048577 bytes"),
        (lambda a, p: replace(p, content=" "), "content is required for a prompt"),
        (lambda a, p: replace(p, details=PromptDetails(model="m" * 2000)), "model is 2000 bytes"),
        (lambda a, p: replace(p, metadata={"k": "v" * 20_000}), "metadata is 20001 bytes"),
        (lambda a, p: replace(p, create_time=2**70), "create_time"),
        (lambda a, p: replace(p, update_time=-1), "update_time"),
        (
            lambda a, p: replace(p, details=PromptDetails(template_id=a.other_prompt.id)),
            "template_id",
        ),
    ],
)
def test_a_crafted_prompt_is_refused_as_a_live_write_would_be(
    archived: Archived, craft: Callable[[Archived, Node], Node], message: str
) -> None:
    prompt = archived.node(NodeKind.PROMPT)
    with pytest.raises(InvalidArgument, match=message):
        archived.restore(archived.with_node(prompt, craft(archived, prompt)))
    archived.untouched()


def test_a_response_that_answers_another_sessions_prompt_is_refused(archived: Archived) -> None:
    response = archived.node(NodeKind.RESPONSE)
    details = replace(response.details_as(ResponseDetails), prompt_id=archived.other_prompt.id)
    with pytest.raises(InvalidArgument, match=r"prompt_id .* is not a prompt of this session"):
        archived.restore(archived.with_node(response, replace(response, details=details)))
    tool = archived.node(NodeKind.TOOL_INVOCATION)
    prompt_id = archived.node(NodeKind.PROMPT).id
    wrong = replace(tool.details_as(ToolInvocationDetails), response_id=prompt_id)
    with pytest.raises(InvalidArgument, match=r"response_id .* is not a response"):
        archived.restore(archived.with_node(tool, replace(tool, details=wrong)))
    archived.untouched()


@pytest.mark.parametrize(
    ("usage", "message"),
    [((2**63 - 1, 0, 2**63 - 1), "prompt_tokens is 9223372036854775807"), ((0, -4, 0), "negative")],
)
def test_token_counts_out_of_range_are_refused(
    archived: Archived, usage: tuple[int, int, int], message: str
) -> None:
    response = archived.node(NodeKind.RESPONSE)
    details = replace(response.details_as(ResponseDetails), token_usage=TokenUsage(*usage))
    with pytest.raises(InvalidArgument, match=message):
        archived.restore(archived.with_node(response, replace(response, details=details)))
    archived.untouched()


def test_edges_to_another_sessions_node_are_left_out(archived: Archived) -> None:
    prompt = archived.node(NodeKind.PROMPT)
    other = archived.other_prompt.id
    crafted = replace(
        archived.export,
        edges=[
            *archived.export.edges,
            Edge(prompt.id, other, EdgeKind.REFERENCES, {}, 1),
            Edge(other, prompt.id, EdgeKind.FOLLOWS, {}, 1),
        ],
    )
    result = archived.restore(crafted)
    skipped = {(e.source_id, e.target_id) for e in result.skipped_edges}  # type: ignore[attr-defined]
    assert skipped == {(prompt.id, other), (other, prompt.id)}
    store = archived.service.store
    assert [e.kind for e in store.edges(other, Direction.BOTH)] == [EdgeKind.BELONGS_TO]
    assert store.get_node(prompt.id) is not None


def test_an_edge_from_a_node_to_itself_is_refused(archived: Archived) -> None:
    prompt = archived.node(NodeKind.PROMPT)
    loop = Edge(prompt.id, prompt.id, EdgeKind.REFERENCES, {}, 1)
    with pytest.raises(InvalidArgument, match="cannot connect a node to itself"):
        archived.restore(replace(archived.export, edges=[*archived.export.edges, loop]))
    archived.untouched()


def _forged(
    archived: Archived, node: Node, event_type: EventType = EventType.NODE_UPDATED
) -> Event:
    """An event of the archived session's history, at the sequence of its first event (a
    hole in the log since the archival), about `node`."""
    first = archived.export.events[0]
    return Event(first.sequence, event_type, first.time, archived.export.session.id, node=node)


def test_an_event_about_another_sessions_node_is_not_written_into_the_log(
    archived: Archived,
) -> None:
    victim = archived.other_prompt
    # Claimed to be of the restored session, but naming the other session's node.
    disguised = replace(victim, session_id=archived.export.session.id, content="forged")
    forged = _forged(archived, disguised)
    events = [forged, *archived.export.events[1:]]
    result = archived.restore(replace(archived.export, events=events))
    assert result.skipped_events == 1  # type: ignore[attr-defined]
    logged = archived.service.store.events.read(forged.sequence, forged.sequence, 1)
    assert not [e for e in logged if e.node is not None and e.node.id == victim.id]


@pytest.mark.parametrize(
    ("event", "message"),
    [
        (lambda a: _forged(a, a.other_prompt), "not of this session"),
        (lambda a: _forged(a, a.export.session, EventType.SESSION_ARCHIVED), "marker"),
        (lambda a: replace(_forged(a, a.export.session), node=None), "without its node"),
        (lambda a: replace(_forged(a, a.export.session), time=2**64), "time"),
    ],
)
def test_events_no_history_of_the_session_holds_are_refused(
    archived: Archived, event: Callable[[Archived], Event], message: str
) -> None:
    events = [event(archived), *archived.export.events[1:]]
    with pytest.raises(InvalidArgument, match=message):
        archived.restore(replace(archived.export, events=events))
    archived.untouched()


def test_a_session_record_that_names_another_session_is_refused(archived: Archived) -> None:
    session = replace(archived.export.session, session_id=archived.other_prompt.session_id)
    with pytest.raises(InvalidArgument, match="session_id is not its id"):
        archived.restore(replace(archived.export, session=session))
    archived.untouched()


def test_restore_rpc_answers_what_no_record_can_hold_with_invalid_argument(
    start_inprocess: Start,
) -> None:
    """Times past what a record holds, and JSON escapes that spell no Unicode text: refused
    with a precise status, not answered INTERNAL after half the work."""
    server = start_inprocess()
    with Client(f"127.0.0.1:{server.port}") as mg:
        session = mg.create_session(title="t")
        mg.add_prompt(session.id, "q")
        data, _ = mg.export_session(session.id)
        mg.delete_session(session.id)
        export = decode_export(data)
        late = replace(export, nodes=[replace(n, create_time=2**70) for n in export.nodes])
        lone_surrogate = data.replace(b'"content":"q"', b'"content":"\\ud800"')
        assert lone_surrogate != data
        for crafted, message in ((late.encode(), "create_time"), (lone_surrogate, "Unicode")):
            with pytest.raises(InvalidArgument, match=message):
                mg.restore_session(crafted)
        assert server.store.get_node(export.session.id) is None
