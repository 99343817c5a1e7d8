"""Session nodes kept decoded: used only while the record read is the one decoded, bounded."""

from __future__ import annotations

import pytest
from memorygraph.codec.nodes import encode_node
from memorygraph.graph.service import GraphService
from memorygraph.model import NewNode, NewSession, Node, NodeKind, ResponseDetails, TokenUsage
from memorygraph.store import GraphStore, MemoryStore
from memorygraph.store import decoded as decoded_module
from memorygraph.store.decoded import DecodedSessions
from memorygraph.store.records import decode_node


def _service() -> tuple[GraphService, GraphStore]:
    store = GraphStore(MemoryStore())
    return GraphService(store), store


def test_a_session_read_again_unchanged_is_not_decoded_again() -> None:
    service, store = _service()
    session = service.create_session(NewSession(title="t"))
    first = store.get_node(session.id)
    assert first is not None and first == decode_node(session.id, encode_node(session))
    assert store.get_node(session.id) is first


def test_a_changed_session_record_is_read_as_it_is_now() -> None:
    service, store = _service()
    session = service.create_session(NewSession(title="t"))
    assert store.get_node(session.id) is not None  # decoded and kept
    prompt = service.create_node(NewNode(NodeKind.PROMPT, session.id, "q"))
    usage = TokenUsage(prompt_tokens=3, completion_tokens=4)
    details = ResponseDetails(prompt_id=prompt.id, token_usage=usage)
    service.create_node(NewNode(NodeKind.RESPONSE, None, "a", details=details))
    now = store.get_node(session.id)
    assert now is not None and now.details.token_usage.total_tokens == 7  # type: ignore[union-attr]
    service.close_session(session.id)
    closed = store.get_node(session.id)
    assert closed is not None and closed.details.state.name == "CLOSED"  # type: ignore[union-attr]


def test_only_small_session_records_are_kept_and_the_table_is_bounded() -> None:
    service, _ = _service()
    session = service.create_session(NewSession(title="t"))
    prompt = service.create_node(NewNode(NodeKind.PROMPT, session.id, "q"))
    big = service.create_session(NewSession(title="x" * 5000))
    decoded = DecodedSessions(capacity=2, max_record=4096)
    for node in (prompt, big):
        raw = encode_node(node)
        assert decoded.decode(node.id, raw) == node
        assert decoded.decode(node.id, raw) is not decoded.decode(node.id, raw)
    assert len(decoded) == 0
    others = [service.create_session(NewSession(title=str(i))) for i in range(3)]
    for other in others:
        decoded.decode(other.id, encode_node(other))
        assert len(decoded) <= 2
    last = others[-1]
    raw = encode_node(last)
    assert decoded.decode(last.id, raw) is decoded.decode(last.id, raw)


def test_a_session_written_by_a_turn_is_read_back_without_decoding(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    service, store = _service()
    session = service.create_session(NewSession(title="t"))
    decoded: list[bytes] = []
    real = decoded_module.decode_node

    def counting(node_id: bytes | None, raw: bytes) -> Node:
        if node_id == session.id:
            decoded.append(raw)
        return real(node_id, raw)

    monkeypatch.setattr(decoded_module, "decode_node", counting)
    for turn in range(3):
        prompt = service.create_node(NewNode(NodeKind.PROMPT, session.id, f"q{turn}"))
        usage = TokenUsage(prompt_tokens=1, completion_tokens=2)
        details = ResponseDetails(prompt_id=prompt.id, token_usage=usage)
        service.create_node(NewNode(NodeKind.RESPONSE, None, "a", details=details))
    assert decoded == []
    now = store.get_node(session.id)
    assert now is not None and now.details.token_usage.total_tokens == 9  # type: ignore[union-attr]
