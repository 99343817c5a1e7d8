"""Where shards go (`render.placement`): moves converge to an even spread over the pods kept,
in the fewest moves, never onto a pod that leaves; the pods' views fold into the map by the
highest shard epoch; a move is over once the map has the shard at a later epoch."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st
from memorygraph_operator.render.context import MemberView, PendingMove, ShardMap
from memorygraph_operator.render.placement import (
    fold_views,
    move_outcome,
    next_move,
    waiting_for,
)


@st.composite
def maps_and_sizes(draw: st.DrawFn) -> tuple[ShardMap, int]:
    members = draw(st.integers(1, 6))
    shards = draw(st.sampled_from([1, 2, 4, 8, 16, 64]))
    owners = tuple(draw(st.lists(st.integers(0, members - 1), min_size=shards, max_size=shards)))
    return ShardMap(1, owners, members), draw(st.integers(1, 8))


def _apply(m: ShardMap, move: PendingMove) -> ShardMap:
    owners = list(m.owners)
    epochs = [m.shard_epoch(s) for s in range(len(owners))]
    owners[move.shard], epochs[move.shard] = move.target, epochs[move.shard] + 1
    return ShardMap(m.epoch + 1, tuple(owners), m.members, tuple(epochs))


@given(maps_and_sizes())
def test_moves_reach_an_even_spread_in_the_fewest_moves_never_onto_a_leaving_pod(
    case: tuple[ShardMap, int],
) -> None:
    m, wanted = case
    keep = min(wanted, m.members)
    shards = len(m.owners)
    low, high = shards // keep, -(-shards // keep)
    # The fewest moves: every shard on a leaving pod, and every shard above `high` on a kept one
    # (then as many as needed to lift the pods below `low`).
    counts = m.spread()
    surplus = sum(counts[keep:]) + sum(max(0, c - high) for c in counts[:keep])
    deficit = sum(max(0, low - c) for c in counts[:keep])
    moves = 0
    while (move := next_move(m, wanted)) is not None:
        assert move.target < keep and move.source != move.target
        assert m.owners[move.shard] == move.source and move.epoch == m.shard_epoch(move.shard)
        m = _apply(m, move)
        moves += 1
        assert moves <= shards
    spread = m.spread()
    assert all(c == 0 for c in spread[keep:])
    assert all(low <= c <= high for c in spread[:keep])
    assert moves == max(surplus, deficit)
    assert sum(m.shard_epochs or ()) == moves  # each shard moved once at most per epoch raise


def test_the_same_map_gives_the_same_move() -> None:
    m = ShardMap(3, (0, 0, 0, 0, 1, 1, 1, 1), 3)
    assert next_move(m, 3) == next_move(m, 3) == PendingMove(3, 0, 2, 0)
    assert next_move(m, 2) is None
    assert next_move(ShardMap(3, (0, 0, 2, 2), 3), 2) == PendingMove(3, 2, 1, 0)


def test_views_fold_in_by_the_highest_shard_epoch() -> None:
    m = ShardMap(5, (0, 1, 0, 1), 2, (0, 2, 0, 0))
    stale = MemberView((0, 0, 0, 1), (0, 1, 0, 0), 5, 2)  # an older owner of shard 1
    newer = MemberView((1, 1, 0, 1), (1, 2, 0, 0), 5, 2)  # shard 0 moved to pod 1
    folded = fold_views(m, {0: stale, 1: newer})
    assert folded == ShardMap(6, (1, 1, 0, 1), 2, (1, 2, 0, 0))
    assert fold_views(folded, {0: stale, 1: newer}) is folded  # nothing newer: the same map
    # A view of another graph's size, or naming a pod the map does not have, is ignored.
    odd = MemberView((1, 1), (9, 9), 5, 2)
    beyond = MemberView((0, 1, 5, 1), (0, 2, 7, 0), 5, 2)
    assert fold_views(m, {0: odd, 1: beyond}) is m


def test_a_move_is_over_once_the_map_has_its_shard_at_a_later_epoch() -> None:
    move = PendingMove(1, 0, 2, 3)
    assert move_outcome(ShardMap(2, (0, 0), 3, (0, 3)), move) is None
    assert move_outcome(ShardMap(3, (0, 2), 3, (0, 4)), move) == "done"
    assert move_outcome(ShardMap(3, (0, 1), 3, (0, 4)), move) == "overtaken"


def test_a_move_waits_for_every_pod_to_answer_and_know_of_its_target() -> None:
    m = ShardMap(2, (0, 0, 0, 0), 3)
    move = PendingMove(3, 0, 2, 0)
    knows = MemberView((0, 0, 0, 0), (0, 0, 0, 0), 2, 3)
    older = MemberView((0, 0, 0, 0), (0, 0, 0, 0), 1, 2)
    assert waiting_for(m, move, {0: knows, 1: knows, 2: knows}) == ()
    assert waiting_for(m, move, {0: older, 2: knows}) == (0, 1)
