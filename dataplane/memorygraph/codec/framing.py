"""Records joined into a message's repeated field without parsing them.

A protobuf message is the concatenation of its fields, so node records each framed as an entry
of a repeated message field and joined together are that field: joined `nodes` entries are a
`QueryBatch`, or the nodes of a `QueryResponse`.
"""

from __future__ import annotations

from memorygraph.v1 import graph_pb2 as pb

__all__ = ["QUERY_BATCH_NODES", "frame", "unframe"]

# The `nodes` field of QueryBatch and QueryResponse.
QUERY_BATCH_NODES = pb.QueryBatch.DESCRIPTOR.fields_by_name["nodes"].number


def _varint(value: int) -> bytes:
    out = bytearray()
    while value > 0x7F:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def frame(number: int, message: bytes) -> bytes:
    """A serialized message as one entry of the repeated message field `number`."""
    return _varint(number << 3 | 2) + _varint(len(message)) + message  # 2: length-delimited


def unframe(entry: bytes) -> bytes:
    """The message inside one framed entry (`frame`'s inverse, for any field number)."""
    position = 0
    for _ in range(2):  # the tag, then the length: each a varint
        while entry[position] & 0x80:
            position += 1
        position += 1
    return entry[position:]
