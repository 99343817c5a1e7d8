"""The protobuf codec: stored node records are the API's wire format, query responses are
framed records joined, and every enum has one table both ways."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st
from memorygraph.codec import enums
from memorygraph.codec.framing import QUERY_BATCH_NODES, frame, unframe
from memorygraph.codec.nodes import decode_node, encode_node, node_message, record_metadata
from memorygraph.errors import InvalidArgument
from memorygraph.model import (
    AgentDetails,
    Direction,
    EdgeKind,
    EventType,
    Node,
    NodeKind,
    PromptDetails,
    ResponseDetails,
    SessionDetails,
    SessionState,
    TemplateDetails,
    TemplateVariable,
    TokenUsage,
    ToolInvocationDetails,
    ToolStatus,
    default_details,
    details_fields,
    details_from_fields,
    new_id,
)
from memorygraph.v1 import graph_pb2 as pb


def _prompt(content: str, metadata: dict[str, str]) -> Node:
    return Node(
        id=new_id(),
        kind=NodeKind.PROMPT,
        session_id=new_id(),
        content=content,
        metadata=metadata,
        create_time=1_700_000_000_123_456,
        update_time=1_700_000_000_123_456,
        details=PromptDetails(model="m"),
    )


# Lengths around the varint boundaries (1, 2 and 3 bytes) of the frame.
contents = st.one_of(st.text(max_size=200), st.integers(100, 70_000).map(lambda n: "x" * n))


@given(st.lists(contents, max_size=4), st.dictionaries(st.text(), st.text(), max_size=3))
def test_framed_records_joined_are_the_query_batch_protobuf_would_build(
    texts: list[str], metadata: dict[str, str]
) -> None:
    nodes = [_prompt(text, metadata) for text in texts]
    records = [encode_node(node) for node in nodes]
    expected = pb.QueryBatch(nodes=[node_message(node) for node in nodes])
    joined = b"".join(frame(QUERY_BATCH_NODES, record) for record in records)
    assert pb.QueryBatch.FromString(joined) == expected
    for node, record in zip(nodes, records, strict=True):
        framed = frame(QUERY_BATCH_NODES, record)
        assert unframe(framed) == record
        assert decode_node(node.id, record) == node
        assert dict(record_metadata(record)) == metadata


def test_a_query_response_takes_the_same_framing_as_a_batch() -> None:
    """The servicer answers Query with framed records joined, then the page token."""
    assert pb.QueryResponse.DESCRIPTOR.fields_by_name["nodes"].number == QUERY_BATCH_NODES
    node = _prompt("hello", {})
    token = pb.QueryResponse(next_page_token="t").SerializeToString()
    entry = frame(QUERY_BATCH_NODES, encode_node(node))
    response = pb.QueryResponse.FromString(entry + token)
    assert list(response.nodes) == [node_message(node)] and response.next_page_token == "t"


def _every_kind() -> list[Node]:
    sid = new_id()
    closed = SessionDetails(SessionState.CLOSED, "u", "", "m", 5, TokenUsage(1, 2, 3))
    variable = TemplateVariable("n", required=True)
    return [
        Node(sid, NodeKind.SESSION, sid, "s", {}, 1, 2, details=closed),
        Node(new_id(), NodeKind.PROMPT, sid, "q", {}, 1, 1, details=PromptDetails(role="user")),
        Node(
            new_id(),
            NodeKind.RESPONSE,
            sid,
            "a",
            {},
            1,
            1,
            details=ResponseDetails(prompt_id=new_id(), model="m", latency_ms=9),
        ),
        Node(
            new_id(),
            NodeKind.TOOL_INVOCATION,
            sid,
            "",
            {},
            1,
            1,
            details=ToolInvocationDetails(tool_name="t", status=ToolStatus.FAILED, duration_ms=7),
        ),
        Node(
            new_id(),
            NodeKind.AGENT,
            None,
            "",
            {},
            1,
            1,
            details=AgentDetails(name="a", capabilities=("x",)),
        ),
        Node(
            new_id(),
            NodeKind.TEMPLATE,
            None,
            "Hi {{n}}",
            {},
            1,
            1,
            details=TemplateDetails("t", (variable,), 2),
        ),
    ]


def test_every_kind_decodes_to_the_node_that_was_encoded() -> None:
    for node in _every_kind():
        assert decode_node(node.id, encode_node(node)) == node


def test_the_plain_data_form_of_every_kind_reads_back_as_the_same_details() -> None:
    for node in _every_kind():
        fields = details_fields(node.details)
        assert details_from_fields(node.kind, fields) == node.details
    # Sessions list every field; other kinds what is set (a response its token counts too).
    assert set(details_fields(SessionDetails())) == {
        "state",
        "user_id",
        "agent_id",
        "model",
        "close_time",
        "prompt_tokens",
        "completion_tokens",
        "total_tokens",
    }
    assert details_fields(PromptDetails()) == {}
    assert details_fields(ResponseDetails(model="m")) == {
        "model": "m",
        "prompt_tokens": 0,
        "completion_tokens": 0,
        "total_tokens": 0,
    }
    assert details_fields(ResponseDetails(model="m"), sparse=True) == {"model": "m"}


@pytest.mark.parametrize(
    ("kind", "fields", "message"),
    [
        (NodeKind.PROMPT, {"bogus": 1}, "has no field 'bogus'"),
        (NodeKind.RESPONSE, {"prompt_tokens": "3"}, "prompt_tokens must be of type int"),
        (NodeKind.SESSION, {"state": "asleep"}, "asleep"),
        (NodeKind.AGENT, {"capabilities": "x"}, "list of strings"),
        (NodeKind.TOOL_INVOCATION, {"response_id": 7}, "id as text"),
    ],
)
def test_plain_data_of_the_wrong_shape_is_refused_naming_the_field(
    kind: NodeKind, fields: dict[str, object], message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        details_from_fields(kind, fields)


def test_a_node_names_its_kind_details_even_when_they_are_all_empty() -> None:
    details = {
        NodeKind.PROMPT: "prompt",
        NodeKind.RESPONSE: "response",
        NodeKind.TOOL_INVOCATION: "tool_invocation",
        NodeKind.AGENT: "agent",
    }
    for kind, field in details.items():
        node = Node(new_id(), kind, None, "", {}, 0, 0, details=default_details(kind))
        message = pb.Node.FromString(encode_node(node))
        assert message.WhichOneof("details") == field
        assert message.HasField("create_time") and message.HasField("update_time")
    empty = Node(new_id(), NodeKind.RESPONSE, None, "", {}, 0, 0, details=ResponseDetails())
    assert pb.Node.FromString(encode_node(empty)).response.HasField("token_usage")


def test_a_node_holds_only_the_details_of_its_kind() -> None:
    with pytest.raises(TypeError, match="cannot hold ResponseDetails"):
        Node(new_id(), NodeKind.PROMPT, None, "", {}, 0, 0, details=ResponseDetails())


def test_records_are_the_same_bytes_however_metadata_was_built() -> None:
    first = _prompt("q", {"b": "2", "a": "1"})
    second = Node(
        first.id,
        first.kind,
        first.session_id,
        first.content,
        {"a": "1", "b": "2"},
        first.create_time,
        first.update_time,
        details=first.details,
    )
    assert encode_node(first) == encode_node(second)


@pytest.mark.parametrize(
    ("table", "domain", "prefix"),
    [
        (enums.NODE_KINDS, NodeKind, "NODE_KIND"),
        (enums.EDGE_KINDS, EdgeKind, "EDGE_KIND"),
        (enums.EVENT_TYPES, EventType, "EVENT_TYPE"),
        (enums.SESSION_STATES, SessionState, "SESSION_STATE"),
        (enums.DIRECTIONS, Direction, "DIRECTION"),
    ],
)
def test_every_enum_value_has_one_wire_value_and_back(
    table: enums.EnumTable, domain: type, prefix: str
) -> None:
    wire_names = {
        name
        for name in pb.DESCRIPTOR.enum_types_by_name[
            "".join(part.title() for part in prefix.split("_"))
        ].values_by_name
        if not name.endswith("UNSPECIFIED")
    }
    assert {f"{prefix}_{member.name}" for member in domain} == wire_names
    for member in domain:
        assert table.from_wire[int(table.to_wire[member])] is member


def test_an_unset_or_unknown_enum_in_a_request_is_refused_naming_the_field() -> None:
    with pytest.raises(InvalidArgument, match="kind is required"):
        enums.node_kind(0)
    with pytest.raises(InvalidArgument, match="kind 99 is not a known node kind"):
        enums.node_kind(99)
    assert enums.direction(0) is Direction.OUTGOING
    assert enums.session_state(0) is None
    assert enums.tool_status(0) is ToolStatus.UNSPECIFIED
