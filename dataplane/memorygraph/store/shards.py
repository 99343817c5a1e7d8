"""Which shard holds what: pure arithmetic over ids and template names. No I/O here.

A data directory holds a fixed number S of shards (a power of two, chosen when it is created).
Everything of a session lives on the session's shard:

    shard(session) = tag(session id) mod S

where `tag` is the id's 16-bit shard tag (`model.ids.id_tag`). A node of a session lives on its
session's shard; an agent or a template (global nodes) on the shard of its own id; a template's
name on the shard of the name's tag (`model.ids.name_tag`), which is its id's shard when the
server made the id. Every key of a shard starts with the shard's number (two bytes,
big-endian), so a shard is one key range in every column family.
"""

from __future__ import annotations

from memorygraph.errors import InvalidArgument
from memorygraph.model import Node, id_tag, name_tag
from memorygraph.model.ids import TAG_BITS
from memorygraph.store.keys import SHARD_BITS, SHARD_LEN

__all__ = ["DEFAULT_SHARDS", "MAX_SHARDS", "Shards", "check_shard_count"]

DEFAULT_SHARDS = 64
# Keys start with the shard's number: below 4096 its first byte is under 0x10, which no key of
# the layouts before shards starts with in the names column family (b"template/...").
MAX_SHARDS = 4096
assert MAX_SHARDS <= 1 << SHARD_BITS  # an event's sequence has room for its shard's number


def check_shard_count(count: int) -> int:
    """`count` when it is a valid number of shards; InvalidArgument saying why not."""
    if not 1 <= count <= MAX_SHARDS or count & (count - 1):
        raise InvalidArgument(
            f"the number of shards must be a power of two from 1 to {MAX_SHARDS}, not {count}"
        )
    return count


class Shards:
    """The shards of one data directory: which shard an id, a session or a name is on, and
    the key prefix of each shard."""

    __slots__ = ("_mask", "_prefixes", "count")

    def __init__(self, count: int) -> None:
        self.count = check_shard_count(count)
        assert count <= 1 << TAG_BITS
        self._mask = count - 1
        self._prefixes = [shard.to_bytes(SHARD_LEN) for shard in range(count)]

    def of_id(self, raw: bytes) -> int:
        """The shard an id routes to by itself: its tag mod S."""
        return id_tag(raw) & self._mask

    def of_name(self, name: str) -> int:
        """The shard of a template's name."""
        return name_tag(name) & self._mask

    def prefix_of(self, raw: bytes) -> bytes:
        """The key prefix of the shard an id routes to by itself: `prefix(of_id(raw))`."""
        return self._prefixes[id_tag(raw) & self._mask]

    def of_node(self, node: Node) -> int:
        """The shard a node lives on: its session's, or its own id's for a global node."""
        return self.of_id(node.session_id if node.session_id is not None else node.id)

    def node_prefix(self, node: Node) -> bytes:
        """The key prefix of the shard a node lives on: its session's, or its own id's for a
        global node."""
        return self.prefix_of(node.session_id if node.session_id is not None else node.id)

    def route_of(self, node: Node) -> bytes | None:
        """Where a node's route goes: the key prefix of the shard its id routes to, when the
        node lives on another (a node of a session, with an id of its own or one from before
        ids carried tags); None when its id routes to it."""
        if node.session_id is None or node.session_id == node.id:
            return None  # a global node or a session: on its own id's shard
        own = self.prefix_of(node.id)
        return own if own != self.prefix_of(node.session_id) else None

    def prefix(self, shard: int) -> bytes:
        """The first bytes of every key of `shard`."""
        return self._prefixes[shard]

    def prefixes(self) -> list[bytes]:
        """Every shard's key prefix, in shard order."""
        return list(self._prefixes)
