"""Moving a shard between the pod members of a graph while it serves (`TakeShard` on the peer
port, asked of the member taking the shard: the target).

The steps are those of `servicers.moving.ShardMover` (copy while writes go on, catch up, pause
every member's writes with the fence of their writers' locks, copy the last changes, count
the shard in), but nothing is shared between pods: the operator's map is read-only to them.
So the members hand the shard over among themselves, and each records it in its volume
(`store.cluster.record_shard`): the shard is the target's from the shard's next epoch on.

1. The target records the move it makes in its volume (`cluster/move`: shard, source, the
   shard's next epoch); one at a time; asked again, a move cut short finishes.
2. Fenced and counted in, it has the source record the hand-over, under the lock the target
   holds there (a source whose lease ran out refuses: it has taken writes since). The
   source's record is the move's point of no return: the source counts the shard out with it
   and never writes it again.
3. The target records it too, then every other member (a member that does not answer keeps
   its writers' lock until its lease runs out, and then asks the others before it writes
   again: `refresh`).
4. The source drops its copy, and the target removes its record of the move.

A target that restarts with a move recorded asks the source whether it took the hand-over:
if it did, the target takes the shard (its copy was exact when it was counted in); if not, it
takes back what it counted in and the move goes on when asked again. A source that restarts
drops what it handed over. Nothing here writes the operator's map: the operator records the
move afterwards, with the shard's epoch.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any, Protocol

from memorygraph.errors import FailedPrecondition, InvalidArgument, Unavailable
from memorygraph.events.hub import EventHub
from memorygraph.graph.peering import WorkerEndpoint
from memorygraph.servicers.moving import (
    FENCE_LEASE_SECONDS,
    FENCE_SECONDS,
    LOCK_SECONDS,
    MapKeeper,
    MovePeer,
    MoveResult,
    ShardMover,
)
from memorygraph.store import GraphStore
from memorygraph.store.cluster import (
    Intent,
    ShardView,
    read_intent,
    recorded_shards,
    write_intent,
)
from memorygraph.store.placement import Move
from memorygraph.store.split import SplitKV

__all__ = ["Members", "PodMover"]

log = logging.getLogger("memorygraph.server")

_ASK_SECONDS = 2.0  # how long a member is given to say which shards it serves
_REFRESH_POLLS = 15  # map polls between two askings of the others (once all answered)


class _Hold:
    """This member's writers' lock, for the length of a `with`."""

    def __init__(self, endpoint: WorkerEndpoint) -> None:
        self.endpoint = endpoint

    def __enter__(self) -> None:
        if not self.endpoint.hold(LOCK_SECONDS):
            raise Unavailable("this member's writes could not be paused; try again")

    def __exit__(self, *exc: object) -> None:
        self.endpoint.unlock()


class Members(Protocol):
    """This pod as a member of its graph (`topology.PodMembers`)."""

    me: int
    view: ShardView  # the shards as this member serves them now

    @property
    def member_count(self) -> int: ...

    @property
    def map_epoch(self) -> int: ...

    @property
    def data_dir(self) -> Path: ...

    def record(self, shard: int, owner: int, epoch: int) -> bool: ...

    def prober(self, worker: int) -> Any: ...


class PodPeer(MovePeer, Protocol):
    """Another member as a move reaches it (`servicers.peers.GrpcPeer`)."""

    def shards(self, timeout: float = ...) -> tuple[list[int], list[int]]: ...

    def hand_over(self, shard: int, owner: int, epoch: int, timeout: float = ...) -> None: ...


class _LivePeers(Mapping[int, Any]):
    """The other members as the store reaches them now (members join while it serves)."""

    def __init__(self, split: SplitKV) -> None:
        self._split = split

    def __getitem__(self, worker: int) -> Any:
        return self._split.peers[worker]

    def __iter__(self) -> Iterator[int]:
        return iter(dict(self._split.peers))

    def __len__(self) -> int:
        return len(self._split.peers)


class PodMover(ShardMover):
    """Moves shards onto pod member `members.me` (see the module); also this member's part
    in the others' moves (`servicers.peers.MemberMoves`)."""

    peers: Mapping[int, PodPeer]

    def __init__(
        self,
        members: Members,
        store: GraphStore,
        endpoint: WorkerEndpoint,
        hub: EventHub,
        keeper: MapKeeper,
    ) -> None:
        split = store.kv
        assert isinstance(split, SplitKV)
        super().__init__(
            members.me, members.data_dir, store, endpoint, hub, _LivePeers(split), keeper
        )
        self.members = members
        self._unsure_since = 0.0  # when a hand-over's answer was last lost
        self._polls = 0
        self._everyone_asked = False  # every member answered `refresh` since the start

    # -- this member's part in any move -------------------------------------------------

    def view(self) -> tuple[list[int], list[int]]:
        view = self.members.view
        return list(view.owners), list(view.epochs)

    def map_state(self) -> tuple[int, int]:
        return self.members.map_epoch, self.members.member_count

    def undelivered(self) -> int:
        return self.store.undelivered()

    def unfinished(self) -> tuple[int, int] | None:
        intent = read_intent(self._local())
        return None if intent is None else (intent.shard, intent.source)

    def take(self, shard: int) -> tuple[int, int, float]:
        result = self.move(shard)
        return result.epoch, result.copied_keys, result.fenced_seconds

    def hand_over(self, shard: int, owner: int, epoch: int, *, held: bool) -> None:
        view = self.members.view
        if not 0 <= shard < len(view.owners):
            raise InvalidArgument(f"there is no shard {shard}: the graph has {len(view.owners)}")
        if not 0 <= owner < self.members.member_count or owner == self.me:
            raise InvalidArgument(f"member {owner} cannot be handed shard {shard} by another")
        if epoch <= view.epochs[shard]:
            if view.owners[shard] == owner:
                self.keeper.reload()  # recorded already (asked again): taken, if not yet
                return
            raise FailedPrecondition(
                f"shard {shard} is member {view.owners[shard]}'s since its epoch "
                f"{view.epochs[shard]}: not handed to member {owner} at epoch {epoch}"
            )
        if view.owners[shard] == self.me and not held:
            raise FailedPrecondition(
                f"shard {shard} is this member's and the caller no longer holds its writers' "
                "lock (its lease ran out, and writes went on): not handed over"
            )
        self.members.record(shard, owner, epoch)
        self.keeper.reload()  # a shard this member held is counted out
        log.info("shard %d is member %d's from its epoch %d", shard, owner, epoch)

    def refresh(self) -> bool:
        """Take the hand-overs the other members recorded and this one missed (it did not
        answer, or was down), then the map: at its start, before it writes again after a
        lease ran out, and now and then (`poll`). Returns whether every member answered."""
        answered = True
        for worker in sorted(self.peers):
            try:
                owners, epochs = self.members.prober(worker).shards(_ASK_SECONDS)
            except Exception:  # whatever it was, the others are asked
                log.debug("member %d did not say which shards it serves", worker)
                answered = False
                continue
            for shard, (owner, epoch) in enumerate(zip(owners, epochs, strict=False)):
                if self.me not in (owner, self.members.view.owners[shard]):
                    self.members.record(shard, owner, epoch)  # only if newer
        self.keeper.reload()
        return answered

    def poll(self) -> None:
        """The map poll's part: the map again, a shard handed over to this member while it
        did not hear back, and what the others recorded (until every member answered once
        since this one started, then every `_REFRESH_POLLS` polls)."""
        self.keeper.reload()
        self.resolve()
        self._polls += 1
        if not self._everyone_asked or self._polls % _REFRESH_POLLS == 0:
            self._everyone_asked = self.refresh() or self._everyone_asked

    def finish_own_part(self) -> None:
        """At this member's start: drop what it handed over before a restart (counted out
        once: its marker says whether it was); a move to it cut short takes back what it
        counted in, unless the source took the hand-over."""
        local = self._local()
        intent = read_intent(local)
        for shard, (owner, epoch) in sorted(recorded_shards(local).items()):
            if intent is not None and intent.shard == shard:
                continue  # a copy being taken, not one handed over
            if owner != self.me and self.store.holds_shard(shard):
                self.store.count_out_shard(shard, epoch)
                self.store.drop_shard(shard)
                log.info("dropped shard %d, handed over before a restart", shard)
        if intent is None or self.members.view.owners[intent.shard] == self.me:
            return
        move = Move(intent.shard, intent.source, self.me, intent.epoch)
        try:
            handed = self._handed_over(move)
        except Unavailable:
            log.info("the move of shard %d ends when member %d answers", move.shard, move.source)
            return
        if handed:
            self.store.adopt_shard(move.shard, move.epoch)
            self._own_it(move)
        elif self.store.undo_adopt(move.shard, move.epoch):
            log.info(
                "counted shard %d out again: the move stopped before its hand-over", move.shard
            )

    def resolve(self) -> None:
        """Take a shard the source handed over while this member did not hear back; once
        the source can no longer take it (the fence's leases ran out), take back what was
        counted in for it. Nothing to do while a move runs here."""
        if not self._one.acquire(blocking=False):
            return
        try:
            intent = read_intent(self._local())
            if intent is None or self.members.view.owners[intent.shard] == self.me:
                return
            move = Move(intent.shard, intent.source, self.me, intent.epoch)
            if self._handed_over(move):
                self._finish_taken(move)
                log.info("took shard %d, which member %d had handed over", move.shard, move.source)
            elif time.monotonic() - self._unsure_since > FENCE_LEASE_SECONDS:
                with _Hold(self.endpoint):
                    self.store.undo_adopt(move.shard, move.epoch)
        except Unavailable:
            return  # asked again at the next poll
        finally:
            self._one.release()

    # -- moves to this member -----------------------------------------------------------

    def _move(self, shard: int) -> MoveResult:
        view = self.members.view
        if not 0 <= shard < len(view.owners):
            raise InvalidArgument(f"there is no shard {shard}: the graph has {len(view.owners)}")
        local = self._local()
        intent = read_intent(local)
        if intent is not None and intent.shard != shard:
            raise FailedPrecondition(
                f"the move of shard {intent.shard} to this member is unfinished: ask for that "
                "shard again to finish it first"
            )
        if intent is None:
            if view.owners[shard] == self.me:
                return MoveResult(view.epochs[shard], 0, 0.0)
            intent = Intent(shard, view.owners[shard], view.epochs[shard] + 1)
            write_intent(local, intent)
        move = Move(shard, intent.source, self.me, intent.epoch)
        copied, fenced = 0, 0.0
        if view.owners[shard] != self.me:
            if self._handed_over(move):  # before a restart, or an answer that was lost
                self._finish_taken(move)
            elif (view.owners[shard], view.epochs[shard] + 1) != (move.source, move.epoch):
                self._give_up(move)
                raise FailedPrecondition(
                    f"shard {shard} moved since this move began (it is member "
                    f"{view.owners[shard]}'s since its epoch {view.epochs[shard]}): ask again"
                )
            else:
                log.info("moving shard %d here from member %d", shard, move.source)
                copied, fenced = self._copy_and_hand_over(move)
        self._drop_at(move.source, shard)
        write_intent(local, None)
        log.info(
            "moved shard %d from member %d here at its epoch %d", shard, move.source, move.epoch
        )
        return MoveResult(move.epoch, copied, fenced)

    def _handed_over(self, move: Move) -> bool:
        """Whether the source took the hand-over of `move` (Unavailable: it does not say)."""
        owners, epochs = self.members.prober(move.source).shards(_ASK_SECONDS)
        return bool(owners[move.shard] == self.me and epochs[move.shard] >= move.epoch)

    def _finish_taken(self, move: Move) -> None:
        """Take a shard the source handed over, outside a fence: under this member's writers'
        lock (its counts and event numbers change), then the others are told."""
        with _Hold(self.endpoint):
            self.store.adopt_shard(move.shard, move.epoch)  # the copy was exact when handed
            self._own_it(move)
        self._tell_others(move)

    def _give_up(self, move: Move) -> None:
        """The shard went to another member meanwhile: what this one copied and counted in
        goes, and so does the move's record."""
        with _Hold(self.endpoint):
            self.store.undo_adopt(move.shard, move.epoch)
            self.store.drop_shard(move.shard)
        write_intent(self._local(), None)

    def _commit(self, move: Move) -> None:
        """The source records the hand-over (asked again while the fence lasts should its
        answer be lost: a source that took it says so again); refused, nothing was handed
        over. Without an answer, every other member keeps its writers paused until the
        fence's lease runs out and asks the others before writing again, and this one asks
        the source at each map poll (`resolve`)."""
        source = self.peers[move.source]
        while True:
            left = FENCE_SECONDS - (time.monotonic() - self._fenced_at)
            try:
                source.hand_over(move.shard, self.me, move.epoch, timeout=max(left, 0.1))
                break
            except FailedPrecondition as refused:
                self.store.undo_adopt(move.shard, move.epoch)
                raise Unavailable(f"nothing was handed over ({refused}); try again") from None
            except Unavailable:
                if left <= 0.2:
                    self._leave_locked.update(self.peers)
                    self._unsure_since = time.monotonic()
                    raise Unavailable(
                        f"member {move.source} did not say whether it took the hand-over of "
                        f"shard {move.shard}: ask for the move again to finish it"
                    ) from None
                time.sleep(0.2)
        self._own_it(move)
        self._tell_others(move)

    def _own_it(self, move: Move) -> None:
        """This member serves the shard from now on (counted in already)."""
        self.members.record(move.shard, self.me, move.epoch)
        self.keeper.reload()
        self.hub.skip_to(self.store.events.last_sequence)

    def _tell_others(self, move: Move) -> None:
        """Every member but the source records the hand-over too; one that does not answer
        keeps the fence's lock until its lease runs out, and then asks the others."""
        for worker, peer in sorted(self.peers.items()):
            if worker == move.source:
                continue
            try:
                peer.hand_over(move.shard, self.me, move.epoch)
            except Exception:  # whatever it was, the others go on
                self._leave_locked.add(worker)
                log.warning("member %d learns of the hand-over from the others later", worker)
