"""Moving a graph's shards between its pods, one at a time, until they are spread evenly.

Each reconcile of a graph with a shard map that is not spread as its ``replicas`` ask (pods
added, pods about to be dropped) or with a move under way:

1. asks every pod of the map (the pods about to leave included) which shards it serves, and
   takes into the map what the pods recorded and the map lacks (a move whose answer was lost,
   or that finished while the operator was down);
2. finishes the move under way (the one recorded with the map, or one a pod says it left
   unfinished), or starts the next one (:func:`.placement.next_move`), by asking the target
   pod to take the shard (``TakeShard``: copy, catch-up, a fenced hand-over of a few tens of
   milliseconds); the pods make the move safe, the operator only chooses and records;
3. records the move with the map *before* asking for it, and each finished move in the map
   (owner and shard epoch), and goes on with the next until the spread is even or the
   reconcile's time is up (then it asks to be run again at once);
4. says how few pods the map may shrink to (:attr:`Rebalance.keep`): a pod that leaves goes
   only once it answered owning nothing, with no write of its own left to deliver, no move
   to it unfinished, and no other pod still finishing a move from it, in a reconcile that
   moved nothing (answers taken before moves are stale); a pod whose volume was never bound
   (it never ran: unschedulable, say) needs no answer, but a move from or through it still
   waits for it.

An operator that restarts asks for the recorded move again (the target goes on where it
stopped, or just tidies up) before it plans another. A move refused or unanswered is asked
again no sooner than a growing pause later; from the :data:`STUCK_AFTER`-th failure on the
graph reports it (the ``Rebalancing`` condition's reason ``MoveStuck``, a Warning Event and the
operator's metric) and keeps trying.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, replace

from memorygraph_operator.api.conditions import Reason
from memorygraph_operator.peers import PeerError, Peers, Taken
from memorygraph_operator.render.context import GraphInputs, MemberView, PendingMove, ShardMap
from memorygraph_operator.render.image import PEER_PORT
from memorygraph_operator.render.names import Names
from memorygraph_operator.render.placement import fold_views, move_outcome, next_move, waiting_for
from memorygraph_operator.render.shardmap import member_address

__all__ = ["STUCK_AFTER", "Rebalance", "needs_pods", "rebalance"]

# No new move starts once one reconcile has moved shards for this long; the next reconcile
# goes on at once.
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

# Writes the map with the move under way; False when the API server refused it.
Record = Callable[[ShardMap, PendingMove], Awaitable[bool]]
# Whether a pod of the graph ever ran (its volume was bound): one that never did holds nothing.
Ran = Callable[[int], Awaitable[bool]]


@dataclass(frozen=True)
class Rebalance:
    """What one reconcile's part in the moves found and did: the map and the move under way
    after it, the ``Rebalancing`` condition's status, reason and message, the moves finished
    (their targets' reports), the failed attempts, when to look again (None: no need), and
    the fewest pods the map may shrink to (None: the pods were not asked, none may go)."""

    shard_map: ShardMap
    move: PendingMove | None
    rebalancing: bool
    reason: Reason
    message: str
    moved: tuple[Taken, ...] = ()
    failed: int = 0
    again_in: float | None = None
    keep: int | None = None

    @property
    def stuck(self) -> bool:
        return self.reason is Reason.MOVE_STUCK


def needs_pods(m: ShardMap, move: PendingMove | None, wanted: int) -> bool:
    """Whether the pods must be asked: a move is under way, one is needed, or pods are about
    to be dropped (a move made behind the operator's back must not leave with them)."""
    if wanted == 0:
        return False
    return move is not None or m.members > wanted or next_move(m, wanted) is not None


async def _views(
    peers: Peers, g: GraphInputs, key: str, members: int
) -> tuple[dict[int, MemberView], dict[int, str]]:
    async def ask(pod: int) -> MemberView | str:
        try:
            return await peers.view(member_address(g, pod, PEER_PORT), key)
        except PeerError as exc:
            return exc.message

    answers = await asyncio.gather(*(ask(p) for p in range(members)))
    views = {p: a for p, a in enumerate(answers) if isinstance(a, MemberView)}
    silent = {p: a for p, a in enumerate(answers) if isinstance(a, str)}
    return views, silent


def _moved(m: ShardMap, move: PendingMove, taken: Taken) -> ShardMap:
    owners, epochs = list(m.owners), list(m.all_epochs())
    if (owners[move.shard], epochs[move.shard]) == (move.target, taken.shard_epoch):
        return m  # recorded already (a move only tidied up)
    owners[move.shard], epochs[move.shard] = move.target, taken.shard_epoch
    return ShardMap(m.epoch + 1, tuple(owners), m.members, tuple(epochs))


def _describe(move: PendingMove) -> str:
    return f"the move of shard {move.shard} from pod {move.source} to pod {move.target}"


def _waiting(m: ShardMap, move: PendingMove, pods: tuple[int, ...], silent: dict[int, str]) -> str:
    said = "; ".join(f"pod {p}: {silent[p]}" for p in pods if p in silent)
    unaware = [p for p in pods if p not in silent]
    parts = []
    if said:
        parts.append(f"pods not answering on their peer port ({said})")
    if unaware:
        listed = ", ".join(str(p) for p in unaware)
        parts.append(f"pods {listed} do not serve by a map naming every pod yet")
    return f"{_describe(move)} waits: {'; '.join(parts)}; shards per pod {m.spread_text()}"


def _unfinished(m: ShardMap, views: dict[int, MemberView]) -> PendingMove | None:
    """A move a pod says it left unfinished (it takes no other shard until it is asked for
    that one again)."""
    for pod, view in sorted(views.items()):
        if view.unfinished is None:
            continue
        shard, source = view.unfinished
        if 0 <= shard < len(m.owners) and 0 <= source < m.members and source != pod:
            return PendingMove(shard, source, pod, m.shard_epoch(shard))
    return None


def _settled(m: ShardMap, move: PendingMove, views: dict[int, MemberView]) -> bool:
    """Whether ``move`` needs nothing more: the map has it done or overtaken, and its target
    does not say it left it unfinished."""
    target = views.get(move.target)
    left_open = target is not None and target.unfinished == (move.shard, move.source)
    return move_outcome(m, move) is not None and not left_open


def _held(
    m: ShardMap, wanted: int, views: dict[int, MemberView], never_ran: frozenset[int]
) -> dict[int, str]:
    """The pods from ``wanted`` on that may not leave yet, and why: one must have answered (a
    shard it was handed behind the map's back would go with it), unless it never ran, hold
    no write still to deliver, and not be the source of a move another pod has not finished
    (that pod asks it again)."""
    held = {}
    for pod in range(wanted, m.members):
        view = views.get(pod)
        if view is None and pod not in never_ran:
            held[pod] = "does not answer on its peer port"
        elif view is not None and view.undelivered:
            held[pod] = f"has {view.undelivered} parts of writes still to deliver"
        elif view is not None and view.unfinished is not None:
            held[pod] = f"has not finished taking shard {view.unfinished[0]}"
    for pod, view in sorted(views.items()):
        if view.unfinished is not None and wanted <= view.unfinished[1] < m.members:
            source = view.unfinished[1]
            why = f"pod {pod} has not finished taking shard {view.unfinished[0]} from it"
            held.setdefault(source, why)
    return held


def _failed(move: PendingMove, error: PeerError, now: float) -> PendingMove:
    pause = min(RETRY_SECONDS * 2**move.attempts, RETRY_MAX_SECONDS)
    return replace(
        move, attempts=move.attempts + 1, error=str(error)[:_ERROR_CHARS], retry_at=now + pause
    )


def _reason(move: PendingMove, otherwise: Reason) -> Reason:
    return Reason.MOVE_STUCK if move.attempts >= STUCK_AFTER else otherwise


def _choose(
    m: ShardMap, move: PendingMove | None, views: dict[int, MemberView], wanted: int
) -> tuple[PendingMove | None, bool]:
    """The move to make now, and whether it was asked for before (recorded, or left
    unfinished by a pod: to be recorded while it waits)."""
    if move is not None and not _settled(m, move, views):
        return move, True
    unfinished = _unfinished(m, views)
    if unfinished is not None:
        return unfinished, True
    return next_move(m, wanted), False


@dataclass
class _Moves:
    """One reconcile's moves as they go: the map, the pods' views, the moves finished."""

    m: ShardMap
    views: dict[int, MemberView]
    silent: dict[int, str]
    wanted: int
    moved: list[Taken]
    never_ran: frozenset[int] = frozenset()

    def result(
        self,
        move: PendingMove | None,
        reason: Reason,
        message: str,
        failed: int = 0,
        again_in: float | None = None,
    ) -> Rebalance:
        rebalancing = reason is not Reason.BALANCED
        held = _held(self.m, self.wanted, self.views, self.never_ran)
        keep = max([self.wanted, *(pod + 1 for pod in held)])
        if self.moved:
            # The answers predate this reconcile's moves (a leaving pod may have taken writes
            # since): the next reconcile, at once, asks again before any pod goes.
            keep = self.m.members
            again_in = 0.0 if again_in is None else min(again_in, 0.0)
        return Rebalance(
            self.m, move, rebalancing, reason, message, tuple(self.moved), failed, again_in, keep
        )

    def balanced(self) -> Rebalance:
        """Spread as it should be; pods leaving that do not answer still hold a scale-in."""
        spread = f"shards per pod {self.m.spread_text()}"
        held = _held(self.m, self.wanted, self.views, self.never_ran)
        if not held:
            return self.result(None, Reason.BALANCED, spread)
        said = "; ".join(
            f"pod {p} {why}" + (f" ({self.silent[p]})" if p in self.silent else "")
            for p, why in sorted(held.items())
        )
        message = f"scaling in to {self.wanted} pods waits: {said}; {spread}"
        return self.result(None, Reason.WAITING_FOR_PODS, message, 0, WAIT_SECONDS)

    def did(self, move: PendingMove, taken: Taken) -> None:
        self.m = _moved(self.m, move, taken)
        self.moved.append(taken)
        view = self.views.get(move.target)
        if view is not None and view.unfinished == (move.shard, move.source):
            self.views[move.target] = replace(view, unfinished=None)


async def rebalance(
    g: GraphInputs,
    peers: Peers,
    key: str | None,
    record: Record,
    ran: Ran | None = None,
) -> Rebalance:
    """One reconcile's moves for ``g`` (its map and move as read, see the module), asking its
    pods with the peer ``key`` (None: its Secret is missing) and writing the map with the move
    under way through ``record`` before each move is asked for."""
    m, move, wanted = g.shard_map, g.move, g.spec.replicas
    assert m is not None
    if not needs_pods(m, move, wanted):  # balanced, or scaled to zero: the move waits
        return Rebalance(m, move, False, Reason.BALANCED, f"shards per pod {m.spread_text()}")
    if key is None:
        message = (
            f"moves wait for the peer key Secret {Names(g.name).peer_secret}; "
            f"shards per pod {m.spread_text()}"
        )
        return Rebalance(m, move, True, Reason.WAITING_FOR_PODS, message, again_in=WAIT_SECONDS)
    views, silent = await _views(peers, g, key, m.members)
    never_ran = frozenset(
        [p for p in silent if p >= max(wanted, 1) and ran is not None and not await ran(p)]
    )
    run = _Moves(fold_views(m, views), views, silent, wanted, [], never_ran)
    started = time.monotonic()
    while True:
        move, asked = _choose(run.m, move, views, wanted)
        if move is None:
            return run.balanced()
        spread = f"shards per pod {run.m.spread_text()}"
        reason_waiting = _reason(move, Reason.WAITING_FOR_PODS)
        waiting = waiting_for(run.m, move, views)
        if waiting:
            message = _waiting(run.m, move, waiting, silent)
            return run.result(move if asked else None, reason_waiting, message, 0, WAIT_SECONDS)
        if time.time() < move.retry_at:
            pause = move.retry_at - time.time()
            message = (
                f"{_describe(move)} failed {move.attempts} times, last: {move.error}; asked "
                f"again in {pause:.0f} s; {spread}"
            )
            return run.result(move, _reason(move, Reason.MOVING_SHARDS), message, 0, pause)
        if run.moved and time.monotonic() - started >= BUDGET_SECONDS:
            message = f"moving shards, {len(run.moved)} moved just now; {spread}"
            return run.result(move if asked else None, Reason.MOVING_SHARDS, message, 0, 0.0)
        if not await record(run.m, move):
            message = f"{_describe(move)} waits: the map could not be written; {spread}"
            return run.result(move if asked else None, reason_waiting, message, 0, WAIT_SECONDS)
        try:
            taken = await peers.take(member_address(g, move.target, PEER_PORT), key, move.shard)
        except PeerError as exc:
            move = _failed(move, exc, time.time())
            message = (
                f"{_describe(move)} failed {move.attempts} times, last: {move.error}; {spread}"
            )
            pause = move.retry_at - time.time()
            return run.result(move, _reason(move, Reason.MOVING_SHARDS), message, 1, pause)
        run.did(move, taken)
        move = None
