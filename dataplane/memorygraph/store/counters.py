"""Counts of what the graph holds, kept up to date in the same batch as every change.

`GraphCounts` is what readers get (metrics, GetMetrics). The names the counts are stored under
in the meta column family are this module's business alone.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from memorygraph.model import (
    Node,
    NodeKind,
    ResponseDetails,
    SessionDetails,
    SessionState,
    TokenUsage,
)
from memorygraph.store import keys
from memorygraph.store.changes import StoreChanges
from memorygraph.store.kv import KeyValueStore, Op

__all__ = ["Counters", "GraphCounts"]

_NODES = {kind: f"nodes/{kind.value}" for kind in NodeKind}
_EDGES = "edges"
_ACTIVE_SESSIONS = "sessions_active"
_TOKENS = ("tokens/prompt", "tokens/completion", "tokens/total")
NAMES = (*_NODES.values(), _EDGES, _ACTIVE_SESSIONS, *_TOKENS)


_MAX, _MIN = 2**63 - 1, -(2**63)


def _int8(value: int) -> bytes:
    return value.to_bytes(8, signed=True)


def _saturated(value: int) -> int:
    """`value` kept within a signed 64-bit count. The graph bounds what one response may add
    (`graph.limits`); a count at its end stays there rather than fail every later write."""
    return _MIN if value < _MIN else _MAX if value > _MAX else value


@dataclass(frozen=True, slots=True)
class GraphCounts:
    """What the graph holds: nodes of each kind, edges, active sessions, tokens of every
    response."""

    nodes: Mapping[NodeKind, int] = field(default_factory=lambda: dict.fromkeys(NodeKind, 0))
    edges: int = 0
    active_sessions: int = 0
    tokens: TokenUsage = TokenUsage()

    @property
    def sessions(self) -> int:
        return self.nodes[NodeKind.SESSION]


class Counters:
    """The persisted counts and their in-memory copy; a change's deltas are written in its
    batch (`ops`) and applied here once the batch is written (`apply`)."""

    def __init__(self, kv: KeyValueStore) -> None:
        raws = kv.multi_get(keys.CF_META, [keys.counter_key(n) for n in NAMES])
        self._values = {
            name: int.from_bytes(raw, signed=True) if raw else 0
            for name, raw in zip(NAMES, raws, strict=True)
        }

    @staticmethod
    def deltas(changes: StoreChanges) -> dict[str, int]:
        """How much each count moves with `changes`."""
        deltas: dict[str, int] = {}
        for node in changes.created:
            Counters._count(deltas, node, +1)
        for before, after in changes.updated:
            Counters._count(deltas, before, -1)
            Counters._count(deltas, after, +1)
        for node in changes.deleted:
            Counters._count(deltas, node, -1)
        edges = len(changes.edges_created) - len(changes.edges_deleted)
        if edges:
            deltas[_EDGES] = edges
        return deltas

    @staticmethod
    def edge_deltas(edges: int) -> dict[str, int]:
        """How much `edges` more edges move the counts."""
        return {_EDGES: edges} if edges else {}

    @staticmethod
    def _count(deltas: dict[str, int], node: Node, sign: int) -> None:
        """Add what `node` counts for (sign +1) or no longer counts for (-1) to `deltas`."""
        name = _NODES[node.kind]
        deltas[name] = deltas.get(name, 0) + sign
        details = node.details
        if isinstance(details, SessionDetails):
            if details.state is SessionState.ACTIVE:
                deltas[_ACTIVE_SESSIONS] = deltas.get(_ACTIVE_SESSIONS, 0) + sign
        elif isinstance(details, ResponseDetails):
            usage = details.token_usage
            counts = (usage.prompt_tokens, usage.completion_tokens, usage.total_tokens)
            for counter, value in zip(_TOKENS, counts, strict=True):
                deltas[counter] = deltas.get(counter, 0) + sign * value

    def ops(self, deltas: dict[str, int]) -> list[Op]:
        """The writes that persist the counts after `deltas`."""
        values = self._values
        return [
            (keys.CF_META, keys.counter_key(name), _int8(_saturated(values[name] + delta)))
            for name, delta in deltas.items()
            if delta
        ]

    def apply(self, deltas: dict[str, int]) -> None:
        values = self._values
        for name, delta in deltas.items():
            value = values[name] + delta
            values[name] = value if _MIN <= value <= _MAX else _saturated(value)

    def snapshot(self) -> GraphCounts:
        values = self._values
        return GraphCounts(
            nodes={kind: values[name] for kind, name in _NODES.items()},
            edges=values[_EDGES],
            active_sessions=values[_ACTIVE_SESSIONS],
            tokens=TokenUsage(*(values[name] for name in _TOKENS)),
        )
