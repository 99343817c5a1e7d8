"""Which shard a call is about: the routing table the server's workers and the client share.

A call about one session, node or template name runs on the worker that owns that shard. Its
key is what names the shard: ("id", text) for a session or node id, ("name", text) for a
template name; `shard_of` turns a key into a shard number for S shards:

    shard(id)   = tag(id) mod S      (`model.ids.id_tag`)
    shard(name) = tag(name) mod S    (`model.ids.name_tag`)

Calls that are not in `ROUTES`, or whose key is None (a listing over every shard, Ingest,
BatchGetNodes), run wherever they arrive.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from typing import Any

from memorygraph.errors import InvalidArgument
from memorygraph.model import format_id, id_tag, name_tag, new_id, parse_id
from memorygraph.v1 import graph_pb2 as pb

__all__ = ["ROUTES", "Key", "place_new", "shard_of"]

Key = tuple[str, str]  # ("id", text) or ("name", text)


def _template_key(request: Any) -> Key:
    if request.WhichOneof("key") == "template_id":
        return ("id", request.template_id)
    return ("name", request.name)


def _node_request_key(request: pb.CreateNodeRequest) -> Key | None:
    if request.session_id:
        return ("id", request.session_id)
    return ("id", request.node_id) if request.node_id else None


# The shard key of each call that is about one session, node or template name, by method.
ROUTES: dict[str, Callable[[Any], Key | None]] = {
    "CreateSession": lambda r: ("id", r.session_id),
    "GetSession": lambda r: ("id", r.session_id),
    "CloseSession": lambda r: ("id", r.session_id),
    "DeleteSession": lambda r: ("id", r.session_id),
    "CreateNode": _node_request_key,
    "GetNode": lambda r: ("id", r.node_id),
    "UpdateNode": lambda r: ("id", r.node_id),
    "DeleteNode": lambda r: ("id", r.node_id),
    "BatchCreateNodes": lambda r: _node_request_key(r.requests[0]) if r.requests else None,
    "CreateEdge": lambda r: ("id", r.source_id),
    "GetEdges": lambda r: ("id", r.node_id),
    "DeleteEdge": lambda r: ("id", r.source_id),
    "Traverse": lambda r: ("id", r.start_node_id),
    "AddPrompt": lambda r: ("id", r.session_id),
    "AddResponse": lambda r: ("id", r.prompt_id),
    "AddToolInvocation": lambda r: ("id", r.response_id),
    "RecordTurn": lambda r: ("id", r.prompt.session_id),
    "CreateTemplate": lambda r: ("name", r.name),
    "GetTemplate": _template_key,
    "InstantiateTemplate": lambda r: ("id", r.session_id) if r.session_id else _template_key(r),
    "SubscribeToSession": lambda r: ("id", r.session_id),
    "ExportSession": lambda r: ("id", r.session_id),
    "ArchiveSession": lambda r: ("id", r.session_id),
    "Query": lambda r: ("id", r.filter.session_id) if r.filter.session_id else None,
    "StreamQuery": lambda r: ("id", r.filter.session_id) if r.filter.session_id else None,
    "StreamEvents": lambda r: ("id", r.session_id) if r.session_id else None,
}


def shard_of(key: Key, shards: int) -> int | None:
    """The shard of `key` among `shards` (a power of two); None when the key names nothing
    (an empty or malformed id: the call runs where it arrives, which refuses it)."""
    kind, text = key
    if not text:
        return None
    if kind == "name":
        return name_tag(text) & (shards - 1)
    try:
        return id_tag(parse_id(text, "id")) & (shards - 1)
    except InvalidArgument:
        return None


def place_new(method: str, request: Any) -> None:
    """A new session (or agent) asked for without an id gets one here, on a shard drawn at
    random, so that new sessions spread over every worker, whoever sends the call where."""
    if method == "CreateSession" and not request.session_id:
        request.session_id = format_id(new_id(random.getrandbits(16)))
    elif (
        method == "CreateNode"
        and not request.session_id
        and not request.node_id
        and request.kind == pb.NODE_KIND_AGENT
    ):
        request.node_id = format_id(new_id(random.getrandbits(16)))
