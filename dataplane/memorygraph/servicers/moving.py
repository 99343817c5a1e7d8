"""Moving a shard to this worker while the graph serves (`MoveShard`), and keeping each worker's
view of the shard map in step with the data directory's.

The worker taking the shard (the target) runs the move; the shard's owner (the source) and
the other workers answer through `v1.WorkerPeer`:

1. it records the move in `moving.json` (one move at a time; a move cut short is finished by
   asking for it again);
2. it copies the shard from the source by difference (`store.moves.sync_shard`) while writes
   go on, then catches up a few times, each copy taking only what changed since the last;
3. it pauses every write of the graph: it takes the writers' lock of every worker, its own
   included, in worker order (a fence: reads go on). While fenced it checks that no worker
   still has parts of writes to deliver to the source (they could hold keys of the shard),
   and that the source's registry reporter has no event of the shard still to report (the new
   owner's would not), copies the last changes, writes the map with itself as the owner at
   the next epoch (the move's point of no return), has every other worker take the map again
   (the source counts the shard out), takes it itself, and lifts the fence (it counts the
   shard in just before writing the map);
4. it has the source drop its copy and removes `moving.json`.

A lock's lease runs out on its own if the target dies while fenced; a worker whose lease ran
out takes the map again, so that none serves a shard after its hand-over with the map from
before. A worker that starts with a move under way finishes its own part: the target takes
back a count-in the map never followed, the source counts out and drops a shard it handed
over.
"""

from __future__ import annotations

import itertools
import logging
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Protocol

from memorygraph.errors import FailedPrecondition, InvalidArgument, Unavailable
from memorygraph.events.hub import EventHub
from memorygraph.graph.peering import WorkerEndpoint
from memorygraph.metrics import definitions as metrics
from memorygraph.servicers import peers
from memorygraph.store import GraphStore, keys
from memorygraph.store.moves import last_sequence, sync_shard, tail_is_new, unreported
from memorygraph.store.placement import (
    Move,
    Placement,
    create_move,
    read_move,
    read_placement,
    remove_move,
    write_placement,
)
from memorygraph.store.split import OUTBOX_PREFIX, SplitKV, remote_chunks

__all__ = ["MapKeeper", "MoveResult", "ShardMover", "finish_own_part"]

log = logging.getLogger("memorygraph.server")

CATCH_UPS = 3  # copies after the first before fencing, fewer once one copies little
_SMALL_COPY = 100  # keys: a catch-up this small is the last before the fence
_FENCE_ATTEMPTS = 3
LOCK_SECONDS = 2.0  # how long the fence waits for one worker's writers' lock
_SCAN_CHUNK = 256  # events a copy reads from the source's log at a time
# The longest the fence may last before the hand-over: well within the locks' leases
# (`servicers.peers.LEASE_SECONDS`), so that every worker takes the new map under its lock.
FENCE_SECONDS = 4.0
FENCE_LEASE_SECONDS = FENCE_SECONDS + 2  # the fence's locks, should the mover die holding them


class MovePeer(Protocol):
    """Another worker as a move reaches it (`servicers.peers.GrpcPeer`)."""

    def get(self, cf: str, key: bytes) -> bytes | None: ...

    def shard_events(
        self, shard: int, start: bytes, end: bytes, limit: int
    ) -> tuple[list[tuple[bytes, bytes]], bytes]: ...

    def scan_chunk(
        self, cf: str, start: bytes, end: bytes, reverse: bool, limit: int, values: bool
    ) -> list[tuple[bytes, bytes]]: ...

    def lock(self, origin: int, lease_seconds: float | None = None) -> None: ...

    def unlock(self) -> None: ...

    def reassign(self) -> None: ...

    def drop(self, shard: int) -> None: ...


class MapKeeper:
    """This worker's view of the data directory's shard map: its store's and its front's."""

    def __init__(
        self,
        read_map: Callable[[], Placement],
        store: GraphStore,
        on_owners: Callable[[list[int], int], None],
        epoch: int,
        hub: EventHub,
    ) -> None:
        """`read_map()` reads the graph's shard map as it is now; `on_owners(owners, epoch)`
        tells the rest of the worker (its front)."""
        self.read_map = read_map
        self.store = store
        self.on_owners = on_owners
        self.epoch = epoch
        self.hub = hub
        self._lock = threading.Lock()

    def reload(self) -> bool:
        """Take the map again if it changed; a shard this worker lost is counted out (its
        copy is dropped later). Returns whether it changed."""
        with self._lock:
            placement = self.read_map()
            if placement.epoch <= self.epoch:
                return False
            split = self.store.kv
            assert isinstance(split, SplitKV)
            me = split.workers.me
            lost = [s for s in split.workers.owned() if placement.owners[s] != me]
            owned = [s for s, owner in enumerate(placement.owners) if owner == me]
            changed = owned != split.workers.owned()
            # Event streams read this worker's log as its shards are: each ends (to be resumed
            # without gap or duplicate) before and after they change.
            reason = "the shards this worker serves changed (a shard moved)"
            if changed:
                self.hub.end_all(reason)
            self.store.reassign(list(placement.owners))
            if changed:
                self.hub.end_all(reason)
            for shard in lost:
                self.store.count_out_shard(shard, placement.shard_epoch(shard))
            self.epoch = placement.epoch
            self.on_owners(list(placement.owners), placement.epoch)
            metrics.SHARDS_OWNED.set(len(owned))
            log.info("took the shard map of epoch %d", placement.epoch)
            return True


class _RemoteEngine:
    """The source's engine, read through its peer (what `sync_shard` reads a copy from)."""

    def __init__(self, peer: MovePeer) -> None:
        self.peer = peer

    def get(self, cf: str, key: bytes) -> bytes | None:
        return self.peer.get(cf, key)

    def shard_events(self, shard: int, start: bytes, end: bytes) -> Iterator[tuple[bytes, bytes]]:
        """The source's events of `shard`, filtered where they are (only they travel)."""
        while True:
            events, start = self.peer.shard_events(shard, start, end, _SCAN_CHUNK)
            yield from events
            if not start:  # the range is done
                return

    def scan(self, cf: str, start: bytes, end: bytes) -> Iterator[tuple[bytes, bytes]]:
        return itertools.chain.from_iterable(
            remote_chunks(self.peer, cf, start, end, False, values=True)  # type: ignore[arg-type]
        )

    def scan_keys(self, cf: str, start: bytes, end: bytes) -> Iterator[bytes]:
        chunks = remote_chunks(self.peer, cf, start, end, False, values=False)  # type: ignore[arg-type]
        return (key for chunk in chunks for key, _ in chunk)


@dataclass(frozen=True, slots=True)
class MoveResult:
    epoch: int
    copied_keys: int
    fenced_seconds: float


class ShardMover:
    """Moves shards onto worker `me` (see the module)."""

    def __init__(
        self,
        me: int,
        data_dir: Path,
        store: GraphStore,
        endpoint: WorkerEndpoint,
        hub: EventHub,
        peers: Mapping[int, Any],
        keeper: MapKeeper,
    ) -> None:
        self.me = me
        self.data_dir = data_dir
        self.store = store
        self.endpoint = endpoint
        self.hub = hub
        self.peers: Mapping[int, MovePeer] = peers
        self.keeper = keeper
        self._one = threading.Lock()  # one move at a time here
        self._fenced_at = 0.0
        self._leave_locked: set[int] = set()  # workers that did not take the new map

    def move(self, shard: int) -> MoveResult:
        if not self._one.acquire(blocking=False):
            raise FailedPrecondition("a move to this worker is under way; try again once it ends")
        try:
            result = self._move(shard)
        except Exception:
            metrics.SHARD_MOVES.labels("failed").inc()
            raise
        finally:
            self._one.release()
        if result.copied_keys or result.fenced_seconds:  # not a move done before
            metrics.SHARD_MOVES.labels("done").inc()
        if result.fenced_seconds:
            metrics.SHARD_MOVE_FENCE.observe(result.fenced_seconds)
        return result

    def _move(self, shard: int) -> MoveResult:
        placement = read_placement(self.data_dir)
        if not 0 <= shard < placement.shards:
            raise InvalidArgument(f"there is no shard {shard}: the graph has {placement.shards}")
        move = read_move(self.data_dir)
        if move is not None and (move.shard, move.target) != (shard, self.me):
            raise FailedPrecondition(
                f"the move of shard {move.shard} to worker {move.target} is unfinished: move "
                "that shard to that worker again to finish it first"
            )
        if move is None:
            if placement.owners[shard] == self.me:
                return MoveResult(placement.epoch, 0, 0.0)
            move = Move(shard, placement.owners[shard], self.me, placement.epoch + 1)
            if not create_move(self.data_dir, move):
                raise FailedPrecondition("another move is under way; try again once it ends")
        copied, fenced = 0, 0.0
        if placement.owners[shard] == move.source:
            copied, fenced = self._copy_and_hand_over(move)
        elif placement.owners[shard] != self.me:
            raise FailedPrecondition(
                f"shard {shard} is on worker {placement.owners[shard]}, not on the worker the "
                f"unfinished move took it from ({move.source})"
            )
        self._drop_at(move.source, shard)
        remove_move(self.data_dir)
        log.info("moved shard %d from worker %d here at epoch %d", shard, move.source, move.epoch)
        return MoveResult(move.epoch, copied, fenced)

    def _copy_and_hand_over(self, move: Move) -> tuple[int, float]:
        """Copy the shard while writes go on, then hand it over fenced: the keys copied, and
        how long the fence lasted."""
        shard = move.shard
        source = _RemoteEngine(self.peers[move.source])
        local = self._local()
        copied = sync_shard(source, local, shard, self.store.shards)  # type: ignore[arg-type]
        for _ in range(CATCH_UPS):
            # Events below the owner's newest now are copied by this catch-up: the fenced
            # copy compares only the events after them.
            since = last_sequence(source) + 1  # type: ignore[arg-type]
            caught_up = sync_shard(source, local, shard, self.store.shards)  # type: ignore[arg-type]
            copied += caught_up
            if caught_up <= _SMALL_COPY:
                break
        started = time.monotonic()
        copied += self._fenced_hand_over(move, source, since)
        return copied, time.monotonic() - started

    def _drop_at(self, source: int, shard: int) -> None:
        """The old owner drops its copy: once it has the new map (a worker that did not take
        it from the move takes it when its lease runs out)."""
        deadline = time.monotonic() + peers.LEASE_SECONDS + 2
        while True:
            try:
                self.peers[source].drop(shard)
                return
            except FailedPrecondition:
                if time.monotonic() > deadline:
                    raise Unavailable(
                        f"shard {shard} is handed over, but worker {source} has not taken the "
                        "new map yet: its old copy is dropped when the move is asked for again"
                    ) from None
                time.sleep(0.5)

    def _local(self) -> Any:
        kv = self.store.kv
        assert isinstance(kv, SplitKV)
        return kv.local

    def _fenced_hand_over(self, move: Move, source: _RemoteEngine, since: int) -> int:
        for attempt in range(_FENCE_ATTEMPTS):
            if attempt:
                time.sleep(attempt)  # outboxes deliver and reporters report meanwhile
            with self._fence() as held:
                if not held or self._undelivered_to(move.source):
                    continue  # parts still to deliver: their outboxes retry within a second
                if unreported(source, move.shard):  # type: ignore[arg-type]
                    continue  # the owner's registry reporter goes on meanwhile
                # Only the events numbered since the last catch-up began, unless one of them
                # archived or restored a session (which changes older events: all then).
                tail = since if tail_is_new(source, move.shard, since) else 0  # type: ignore[arg-type]
                copied = sync_shard(
                    source,  # type: ignore[arg-type]
                    self._local(),
                    move.shard,
                    self.store.shards,
                    events_since=tail,
                )
                # Counted in before the map names this worker: a failure here hands nothing
                # over, and a worker that starts with it counted in but not named undoes it.
                self.store.adopt_shard(move.shard, move.epoch)
                if time.monotonic() - self._fenced_at > FENCE_SECONDS:
                    # The locks' leases may run out before every worker takes the new map.
                    self.store.undo_adopt(move.shard, move.epoch)
                    raise Unavailable(
                        f"copying and counting shard {move.shard} took over {FENCE_SECONDS:.0f} "
                        "s while the graph's writes were paused; nothing was handed over, try "
                        "again when the graph takes fewer writes"
                    )
                self._commit(move)
                return copied
        raise Unavailable(
            "the graph's writes could not be paused for the hand-over (a worker was busy, a "
            "worker had writes still to deliver, or the shard's owner had token usage of it not "
            "yet reported to the LLM-Registry); nothing was handed over, try again"
        )

    def _commit(self, move: Move) -> None:
        """Hand the shard over, fenced and counted in here: the map with this worker as the
        shard's owner at the move's epoch (the point of no return), then every worker takes
        it."""
        placement = read_placement(self.data_dir)
        owners = list(placement.owners)
        owners[move.shard] = self.me
        write_placement(self.data_dir, replace(placement, owners=tuple(owners), epoch=move.epoch))
        self._after_commit(move)

    def _after_commit(self, move: Move) -> None:
        """Every worker takes the new map while fenced (the source counts the shard out), this
        one too: each is tried whatever the others did (a worker that does not answer takes
        the map when its lease runs out, or when it starts)."""
        for worker, peer in sorted(self.peers.items()):
            try:
                peer.reassign()
            except Exception:  # whatever it was, the others go on
                # Its lock is left to its lease: when the lease runs out it takes the map.
                self._leave_locked.add(worker)
                log.warning("worker %d takes the new shard map when its lease runs out", worker)
        self.keeper.reload()
        self.hub.skip_to(self.store.events.last_sequence)

    @contextmanager
    def _fence(self) -> Iterator[bool]:
        """Every worker's writers' lock, in worker order (this one's too); yields whether
        they were all taken (those taken are released on leaving)."""
        taken: list[int] = []
        self._fenced_at = time.monotonic()
        self._leave_locked = set()
        try:
            for worker in sorted([self.me, *self.peers]):
                if worker == self.me:
                    if not self.endpoint.hold(LOCK_SECONDS):
                        yield False
                        return
                else:
                    try:
                        self.peers[worker].lock(self.me, FENCE_LEASE_SECONDS)
                    except Unavailable:
                        yield False
                        return
                taken.append(worker)
            yield True
        finally:
            for worker in reversed(taken):
                if worker == self.me:
                    self.endpoint.unlock()
                elif worker in self._leave_locked:
                    continue
                else:
                    try:
                        self.peers[worker].unlock()
                    except Unavailable:
                        log.warning("worker %d's lock is released when its lease runs out", worker)

    def _undelivered_to(self, worker: int) -> bool:
        """Whether any worker holds parts of writes not yet delivered to `worker`."""
        start = OUTBOX_PREFIX + worker.to_bytes(2)
        end = keys.prefix_end(start)
        if any(True for _ in self._local().scan_keys(keys.CF_META, start, end)):
            return True
        return any(
            peer.scan_chunk(keys.CF_META, start, end, False, 1, False)
            for peer in self.peers.values()
        )


def finish_own_part(
    data_dir: Path, me: int, store: GraphStore, on_done: Callable[[str], None]
) -> None:
    """At a worker's start: its part of a move made while serving that was cut short (the
    target takes back a count-in the map never followed; the source, handed over, counts the
    shard out and drops it)."""
    move = read_move(data_dir)
    if move is None:
        return
    owner = read_placement(data_dir).owners[move.shard]
    if move.target == me and owner != me and store.undo_adopt(move.shard, move.epoch):
        on_done(f"counted shard {move.shard} out again: the move stopped before its hand-over")
    elif move.source == me and owner != me:
        store.count_out_shard(move.shard, move.epoch)
        store.drop_shard(move.shard)
        on_done(f"dropped shard {move.shard}, handed over before a restart")
