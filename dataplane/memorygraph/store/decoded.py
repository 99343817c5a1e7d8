"""Session nodes kept decoded while their records stay the same.

Every write to a session reads its session node first (is it open? what are its token
totals?), so a busy session's record is decoded again on every turn. Decoding costs several
microseconds of Python; comparing the record just read with the one decoded last costs well
under one. An entry is used only when the record read now is byte for byte the one it was
decoded from, so no change can be missed, whoever made it (another worker, a restore, a move):
a changed record is simply decoded again.

The nodes handed out are shared between callers and must not be changed in place (the store's
callers make changed nodes with `dataclasses.replace`). The memory held is bounded: at most
`capacity` entries of records up to `max_record` bytes, and a full table starts again empty.
"""

from __future__ import annotations

from memorygraph.model import Node, NodeKind
from memorygraph.store.records import decode_node

__all__ = ["DecodedSessions"]

CAPACITY = 1024
MAX_RECORD = 4096


class DecodedSessions:
    def __init__(self, capacity: int = CAPACITY, max_record: int = MAX_RECORD) -> None:
        self.capacity = capacity
        self.max_record = max_record
        self._entries: dict[bytes, tuple[bytes, Node]] = {}

    def decode(self, node_id: bytes, raw: bytes) -> Node:
        """The node `raw` (the record of `node_id` read just now) holds."""
        entry = self._entries.get(node_id)
        if entry is not None and entry[0] == raw:
            return entry[1]
        node = decode_node(node_id, raw)
        self.keep(node, raw)
        return node

    def keep(self, node: Node, raw: bytes) -> None:
        """Keep `node` as the one `raw`, its record, holds (a session just read, or just
        written: a response's token totals change the record the next prompt reads)."""
        if node.kind is not NodeKind.SESSION or len(raw) > self.max_record:
            return
        entries = self._entries
        if len(entries) >= self.capacity and node.id not in entries:
            entries.clear()  # no scan for the oldest: an entry is cheap to make again
        entries[node.id] = (raw, node)

    def __len__(self) -> int:
        return len(self._entries)
