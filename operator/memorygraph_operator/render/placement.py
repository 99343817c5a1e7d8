"""Where a graph's shards go: the map after what its pods say, and the next move.

Pure: the pods' answers (:class:`MemberView`) come in as values.

- :func:`fold_views` takes into the map every move the pods recorded and the map does not have
  yet (a move finished just before the operator stopped, or whose answer was lost): for each
  shard, the owner of the highest shard epoch wins, as it does in every pod.
- :func:`next_move` says which shard to move next so that the pods the graph keeps own
  ``floor(S/n)`` or ``ceil(S/n)`` shards each and the pods it drops own none: the pods being
  dropped are emptied first, then the fullest pod gives to the emptiest, one shard at a time.
  Only pods that answered take part; a move waits until every pod knows of every other (the
  map naming them all reached each one), because each pod's writes must reach the new owner.
"""

from __future__ import annotations

from collections.abc import Mapping

from memorygraph_operator.render.context import MemberView, PendingMove, ShardMap

__all__ = ["fold_views", "move_outcome", "next_move", "waiting_for"]


def fold_views(m: ShardMap, views: Mapping[int, MemberView]) -> ShardMap:
    """``m`` with the newer owners the pods' views name (the same map when none is newer);
    a view of another shard count, or naming a pod the map does not have, is ignored."""
    owners, epochs = list(m.owners), list(m.all_epochs())
    for view in views.values():
        if len(view.owners) != len(owners) or len(view.epochs) != len(owners):
            continue
        for shard, (owner, epoch) in enumerate(zip(view.owners, view.epochs, strict=True)):
            if epoch > epochs[shard] and 0 <= owner < m.members:
                owners[shard], epochs[shard] = owner, epoch
    if tuple(owners) == m.owners and tuple(epochs) == m.all_epochs():
        return m
    return ShardMap(m.epoch + 1, tuple(owners), m.members, tuple(epochs))


def move_outcome(m: ShardMap, move: PendingMove) -> str | None:
    """Whether ``move`` is over by ``m``: "done" (the target owns the shard at a later epoch),
    "overtaken" (another pod does), or None (not yet)."""
    if m.shard_epoch(move.shard) <= move.epoch:
        return None
    return "done" if m.owners[move.shard] == move.target else "overtaken"


def waiting_for(m: ShardMap, move: PendingMove, views: Mapping[int, MemberView]) -> tuple[int, ...]:
    """The pods ``move`` waits for: every pod takes part in a move's fence and must route the
    shard to its new owner, so each must have answered and know of the target."""
    silent = {p for p in range(m.members) if p not in views}
    unaware = {p for p, v in views.items() if v.members <= move.target}
    return tuple(sorted(silent | unaware))


def next_move(m: ShardMap, wanted: int) -> PendingMove | None:
    """The next shard to move for ``m`` to be spread evenly over pods ``0 .. wanted-1`` (None:
    it is). Deterministic: the same map and size give the same move, so an operator that
    restarts asks for the move it was making."""
    keep = min(max(wanted, 1), m.members)
    counts = m.spread()
    target = min(range(keep), key=lambda p: (counts[p], p))
    leaving = [p for p in range(keep, m.members) if counts[p]]
    if leaving:
        source = leaving[-1]
    else:
        source = max(range(keep), key=lambda p: (counts[p], -p))
        if counts[source] - counts[target] <= 1:
            return None
    shard = max(s for s, owner in enumerate(m.owners) if owner == source)
    return PendingMove(shard, source, target, m.shard_epoch(shard))
