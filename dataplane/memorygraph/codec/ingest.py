"""Turning an IngestBatch into graph items: ids assigned up front, `$N` references resolved."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

from google.protobuf.descriptor import Descriptor
from google.protobuf.message import Message

from memorygraph.codec import requests as rq
from memorygraph.errors import InvalidArgument
from memorygraph.model import (
    IngestItem,
    NewNode,
    NewSession,
    ResponseDetails,
    ToolInvocationDetails,
    format_id,
    id_tag,
    new_id,
)
from memorygraph.v1 import graph_pb2 as pb

__all__ = ["MAX_BATCH_ITEMS", "ingest_items"]

MAX_BATCH_ITEMS = 10_000

_NODE_ITEMS: dict[str, Callable[[Any], NewNode]] = {
    "node": rq.new_node,
    "prompt": rq.prompt_node,
    "response": rq.response_node,
    "tool_invocation": rq.tool_node,
}


@functools.cache
def _id_fields(descriptor: Descriptor) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """The string fields of a message type named `*_id`, and its single message fields."""
    ids = tuple(
        f.name for f in descriptor.fields if f.type == f.TYPE_STRING and f.name.endswith("_id")
    )
    nested = tuple(
        f.name for f in descriptor.fields if f.message_type is not None and not f.is_repeated
    )
    return ids, nested


def _resolve(message: Message, ids: list[str], index: int) -> None:
    """Replace every `$N` in an id field (any depth) with the id made by item N."""
    id_fields, nested = _id_fields(message.DESCRIPTOR)
    for name in id_fields:
        value = getattr(message, name)
        if value[:1] != "$":
            continue
        try:
            target = int(value[1:])
        except ValueError:
            raise InvalidArgument(
                f"items[{index}].{name}: {value!r} is not a reference like $0"
            ) from None
        if not 0 <= target < index or not ids[target]:
            raise InvalidArgument(
                f"items[{index}].{name}: {value} does not name an earlier item that creates a node"
            )
        setattr(message, name, ids[target])
    for name in nested:
        if message.HasField(name):
            _resolve(getattr(message, name), ids, index)


def _session(
    node: NewNode, made: dict[bytes, bytes | None], session_of: Callable[[bytes], bytes | None]
) -> bytes | None:
    """The session a node made ahead of its creation lands in, as far as can be known before
    the batch is applied: the one it names, or else that of the parent it answers (made
    earlier in the batch, or stored). None for a global node, or when the parent is unknown
    (its creation fails then)."""
    if node.session_id is not None:
        return node.session_id
    parent: bytes | None = None
    if isinstance(node.details, ResponseDetails):
        parent = node.details.prompt_id
    elif isinstance(node.details, ToolInvocationDetails):
        parent = node.details.response_id
    if parent is None:
        return None
    return made[parent] if parent in made else session_of(parent)


def ingest_items(
    batch: pb.IngestBatch, session_of: Callable[[bytes], bytes | None]
) -> tuple[list[IngestItem], list[str]]:
    """The batch's items as domain objects, and the id each one creates ("" for edges).

    A node the batch names gets an id now, carrying its session's shard tag: `session_of`
    gives the session of a stored node (None when there is none)."""
    if len(batch.items) > MAX_BATCH_ITEMS:
        raise InvalidArgument(f"at most {MAX_BATCH_ITEMS} items per batch")
    items: list[IngestItem] = []
    ids: list[str] = []
    made: dict[bytes, bytes | None] = {}  # node id -> its session, for what the batch makes
    for index, original in enumerate(batch.items):
        which = original.WhichOneof("item")
        if which is None:
            raise InvalidArgument(f"items[{index}] is empty")
        request = getattr(original, which)  # resolved in place: the batch is ours
        _resolve(request, ids, index)
        try:
            item: IngestItem
            if which == "session":
                request.session_id = request.session_id or format_id(new_id())
                item = rq.new_session(request)
                made[item.session_id or b""] = item.session_id
            elif which == "edge":
                item = rq.new_edge(request)
            else:
                node = _NODE_ITEMS[which](request)
                session_id = _session(node, made, session_of)
                if node.node_id is None:
                    tag = id_tag(session_id) if session_id is not None else None
                    node.node_id, node.fresh_id = new_id(tag), True
                made[node.node_id] = session_id
                item = node
        except InvalidArgument as exc:
            raise InvalidArgument(f"items[{index}]: {exc}") from None
        items.append(item)
        if isinstance(item, NewNode):
            ids.append(format_id(item.node_id or b""))
        elif isinstance(item, NewSession):
            ids.append(format_id(item.session_id or b""))
        else:
            ids.append("")
    return items, ids
