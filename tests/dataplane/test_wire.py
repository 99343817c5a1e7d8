"""Stored node records are the API's wire format; query responses are framed records joined."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st
from memorygraph.graph.model import Node, NodeKind
from memorygraph.ids import new_id
from memorygraph.v1 import graph_pb2 as pb
from memorygraph.wire import (
    QUERY_BATCH_NODES,
    decode_node,
    encode_node,
    frame,
    node_message,
    record_metadata,
)


def _prompt(content: str, metadata: dict[str, str]) -> Node:
    return Node(
        id=new_id(),
        kind=NodeKind.PROMPT,
        session_id=new_id(),
        content=content,
        metadata=metadata,
        create_time=1_700_000_000_123_456,
        update_time=1_700_000_000_123_456,
        attrs={"model": "m"},
    )


# Lengths around the varint boundaries (1, 2 and 3 bytes) of the frame.
contents = st.one_of(st.text(max_size=200), st.integers(100, 70_000).map(lambda n: "x" * n))


@given(st.lists(contents, max_size=4), st.dictionaries(st.text(), st.text(), max_size=3))
def test_framed_records_joined_are_the_query_batch_protobuf_would_build(
    texts: list[str], metadata: dict[str, str]
) -> None:
    nodes = [_prompt(text, metadata) for text in texts]
    framed = [frame(QUERY_BATCH_NODES, encode_node(node)) for node in nodes]
    expected = pb.QueryBatch(nodes=[node_message(node) for node in nodes])
    assert pb.QueryBatch.FromString(b"".join(framed)) == expected
    for node, one in zip(nodes, framed, strict=True):
        record = pb.QueryBatch.FromString(one).nodes[0].SerializeToString(deterministic=True)
        assert decode_node(node.id, record) == node
        assert dict(record_metadata(one)) == metadata


def test_a_query_response_takes_the_same_framing_as_a_batch() -> None:
    """The servicer answers Query with framed records joined, then the page token."""
    assert pb.QueryResponse.DESCRIPTOR.fields_by_name["nodes"].number == QUERY_BATCH_NODES
    node = _prompt("hello", {})
    token = pb.QueryResponse(next_page_token="t").SerializeToString()
    response = pb.QueryResponse.FromString(frame(QUERY_BATCH_NODES, encode_node(node)) + token)
    assert list(response.nodes) == [node_message(node)] and response.next_page_token == "t"


def test_every_kind_decodes_to_the_attributes_the_service_builds() -> None:
    session = Node(
        new_id(),
        NodeKind.SESSION,
        None,
        "s",
        {},
        1,
        2,
        {
            "state": "closed",
            "user_id": "u",
            "agent_id": "",
            "model": "m",
            "close_time": 5,
            "prompt_tokens": 1,
            "completion_tokens": 2,
            "total_tokens": 3,
        },
    )
    session.session_id = session.id
    sid = session.id
    nodes = [
        session,
        Node(new_id(), NodeKind.PROMPT, sid, "q", {}, 1, 1, {"role": "user"}),
        Node(
            new_id(),
            NodeKind.RESPONSE,
            sid,
            "a",
            {},
            1,
            1,
            {"model": "m", "prompt_tokens": 0, "completion_tokens": 0, "total_tokens": 0},
        ),
        Node(
            new_id(),
            NodeKind.TOOL_INVOCATION,
            sid,
            "",
            {},
            1,
            1,
            {"tool_name": "t", "status": "failed", "duration_ms": 7},
        ),
        Node(new_id(), NodeKind.AGENT, None, "", {}, 1, 1, {"name": "a", "capabilities": ["x"]}),
        Node(
            new_id(),
            NodeKind.TEMPLATE,
            None,
            "Hi {{n}}",
            {},
            1,
            1,
            {
                "name": "t",
                "usage_count": 2,
                "variables": [
                    {
                        "name": "n",
                        "description": "",
                        "required": True,
                        "default_value": "",
                        "pattern": "",
                    }
                ],
            },
        ),
    ]
    for node in nodes:
        assert decode_node(node.id, encode_node(node)) == node


def test_a_node_names_its_kind_details_even_when_they_are_all_empty() -> None:
    details = {
        NodeKind.PROMPT: "prompt",
        NodeKind.RESPONSE: "response",
        NodeKind.TOOL_INVOCATION: "tool_invocation",
        NodeKind.AGENT: "agent",
    }
    for kind, field in details.items():
        node = Node(new_id(), kind, None, "", {}, 0, 0, {})
        message = pb.Node.FromString(encode_node(node))
        assert message.WhichOneof("details") == field
        assert message.HasField("create_time") and message.HasField("update_time")
    response = pb.Node.FromString(
        encode_node(Node(new_id(), NodeKind.RESPONSE, None, "", {}, 0, 0, {}))
    )
    assert response.response.HasField("token_usage")


def test_records_are_the_same_bytes_however_metadata_was_built() -> None:
    first = _prompt("q", {"b": "2", "a": "1"})
    second = Node(
        **{
            **{f: getattr(first, f) for f in ("id", "kind", "session_id", "content")},
            "metadata": {"a": "1", "b": "2"},
            "create_time": first.create_time,
            "update_time": first.update_time,
            "attrs": {"model": "m"},
        }
    )
    assert encode_node(first) == encode_node(second)
