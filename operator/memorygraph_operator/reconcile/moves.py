"""Moving a graph's shards between its pods, one at a time, until they are spread evenly.

Each reconcile of a graph with a shard map that is not spread as its ``replicas`` ask (pods
added, pods about to be dropped) or with a move under way:

1. asks every pod which shards it serves, and takes into the map what the pods recorded and
   the map lacks (a move whose answer was lost, or that finished while the operator was down);
2. finishes the move under way, or starts the next one (:func:`.placement.balance`), by asking
   the target pod to take the shard (``TakeShard``: copy, catch-up, a fenced hand-over of a few
   tens of milliseconds); the pods make the move safe, the operator only chooses and records;
3. records each finished move in the map (owner and shard epoch), and goes on with the next
   until the spread is even or the reconcile's time is up (then it asks to be run again soon).

The move under way is recorded with the map before the target is asked, so an operator that
restarts asks for that shard again (the target goes on where it stopped) before it plans
another. A move refused or unanswered is asked again later, with a growing pause; from the
:data:`STUCK_AFTER`-th failure on the graph reports it (the ``Rebalancing`` condition's reason
``MoveStuck``, a Warning Event and the operator's metric) and keeps trying.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass, replace

from memorygraph_operator.api.conditions import Reason
from memorygraph_operator.peers import PeerError, Peers, Taken
from memorygraph_operator.render.context import GraphInputs, MemberView, PendingMove, ShardMap
from memorygraph_operator.render.image import PEER_PORT
from memorygraph_operator.render.names import Names
from memorygraph_operator.render.placement import fold_views, move_outcome, next_move, waiting_for

__all__ = ["STUCK_AFTER", "Rebalance", "needs_pods", "rebalance"]

# Moves one reconcile makes at most for this long; then it asks to be run again at once.
BUDGET_SECONDS = 20.0
# Failed attempts after which a move is reported as stuck.
STUCK_AFTER = 3
# Pause before asking again: pods not answering, or not knowing each other yet.
WAIT_SECONDS = 10.0
# After a move failed: doubled with each attempt, up to the maximum.
RETRY_SECONDS = 5.0
RETRY_MAX_SECONDS = 300.0
# Characters of a pod's error kept with the move.
_ERROR_CHARS = 300


@dataclass(frozen=True)
class Rebalance:
    """What one reconcile's part in the moves found and did: the map and the move under way
    after it, the ``Rebalancing`` condition's status, reason and message, the moves finished
    (their targets' reports), the failed attempts, and when to look again (None: no need)."""

    shard_map: ShardMap
    move: PendingMove | None
    rebalancing: bool
    reason: Reason
    message: str
    moved: tuple[Taken, ...] = ()
    failed: int = 0
    again_in: float | None = None

    @property
    def stuck(self) -> bool:
        return self.reason is Reason.MOVE_STUCK


def needs_pods(m: ShardMap, move: PendingMove | None, wanted: int) -> bool:
    """Whether the pods must be asked: a move is under way, one is needed, or pods are about
    to be dropped (a move made behind the operator's back must not leave with them)."""
    if wanted == 0:
        return False
    return move is not None or m.members > wanted or next_move(m, wanted) is not None


def peer_address(g: GraphInputs, pod: int) -> str:
    return f"{g.name}-{pod}.{Names(g.name).headless_service}.{g.namespace}.svc:{PEER_PORT}"


async def _views(
    peers: Peers, g: GraphInputs, key: str, members: int
) -> tuple[dict[int, MemberView], dict[int, str]]:
    async def ask(pod: int) -> MemberView | str:
        try:
            return await peers.view(peer_address(g, pod), key)
        except PeerError as exc:
            return exc.message

    answers = await asyncio.gather(*(ask(p) for p in range(members)))
    views = {p: a for p, a in enumerate(answers) if isinstance(a, MemberView)}
    silent = {p: a for p, a in enumerate(answers) if isinstance(a, str)}
    return views, silent


def _moved(m: ShardMap, move: PendingMove, taken: Taken) -> ShardMap:
    owners = list(m.owners)
    epochs = [m.shard_epoch(s) for s in range(len(owners))]
    owners[move.shard], epochs[move.shard] = move.target, taken.shard_epoch
    return ShardMap(m.epoch + 1, tuple(owners), m.members, tuple(epochs))


def _spread(m: ShardMap) -> str:
    return "/".join(str(c) for c in m.spread())


def _waiting(m: ShardMap, move: PendingMove, pods: tuple[int, ...], silent: dict[int, str]) -> str:
    said = "; ".join(f"pod {p}: {silent[p]}" for p in pods if p in silent)
    unaware = [p for p in pods if p not in silent]
    parts = []
    if said:
        parts.append(f"pods not answering on their peer port ({said})")
    if unaware:
        listed = ", ".join(str(p) for p in unaware)
        parts.append(f"pods {listed} do not know of every pod yet (the map reaches them)")
    doing = f"the move of shard {move.shard} from pod {move.source} to pod {move.target}"
    return f"{doing} waits: {'; '.join(parts)}; shards per pod {_spread(m)}"


async def rebalance(
    g: GraphInputs,
    peers: Peers,
    key: str | None,
    *,
    clock: Callable[[], float] = time.monotonic,
    budget: float | None = None,
) -> Rebalance:
    """One reconcile's moves for ``g`` (its map and move as read, see the module), asking its
    pods with the peer ``key`` (None: its Secret is missing)."""
    m, move, wanted = g.shard_map, g.move, g.spec.replicas
    assert m is not None
    if not needs_pods(m, move, wanted):
        return Rebalance(m, None, False, Reason.BALANCED, f"shards per pod {_spread(m)}")
    if key is None:
        message = (
            f"moves wait for the peer key Secret {Names(g.name).peer_secret}; "
            f"shards per pod {_spread(m)}"
        )
        return Rebalance(m, move, True, Reason.WAITING_FOR_PODS, message, again_in=WAIT_SECONDS)
    views, silent = await _views(peers, g, key, m.members)
    m = fold_views(m, views)
    budget = BUDGET_SECONDS if budget is None else budget
    started = clock()
    moved: list[Taken] = []
    while True:
        if move is not None and move_outcome(m, move) is not None:
            move = None  # finished (its answer was lost), or overtaken by another
        if move is None:
            move = next_move(m, wanted)
            if move is None:
                message = f"shards per pod {_spread(m)}"
                return Rebalance(m, None, False, Reason.BALANCED, message, tuple(moved))
        waiting = waiting_for(m, move, views)
        if waiting:
            message = _waiting(m, move, waiting, silent)
            # A move not asked for yet is not recorded: the plan may change meanwhile.
            kept = move if move.attempts or move == g.move else None
            return Rebalance(
                m, kept, True, Reason.WAITING_FOR_PODS, message, tuple(moved), 0, WAIT_SECONDS
            )
        if moved and clock() - started >= budget:
            message = f"moving shards, {len(moved)} moved just now; shards per pod {_spread(m)}"
            return Rebalance(m, move, True, Reason.MOVING_SHARDS, message, tuple(moved), 0, 0.0)
        try:
            taken = await peers.take(peer_address(g, move.target), key, move.shard)
        except PeerError as exc:
            move = replace(move, attempts=move.attempts + 1, error=str(exc)[:_ERROR_CHARS])
            message = (
                f"the move of shard {move.shard} from pod {move.source} to pod {move.target} "
                f"failed {move.attempts} times, last: {move.error}; shards per pod {_spread(m)}"
            )
            pause = min(RETRY_SECONDS * 2 ** (move.attempts - 1), RETRY_MAX_SECONDS)
            reason = Reason.MOVE_STUCK if move.attempts >= STUCK_AFTER else Reason.MOVING_SHARDS
            return Rebalance(m, move, True, reason, message, tuple(moved), 1, pause)
        m = _moved(m, move, taken)
        moved.append(taken)
        move = None
