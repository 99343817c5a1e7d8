"""The workers of a split graph reaching each other over gRPC (`v1.WorkerPeer`): the servicer a
worker runs for the others, and `GrpcPeer`, the `store.split.Peer` that calls it.

A lock is held under a lease: granted by `Lock`, ended by `Unlock` or, should the caller die
first, by the lease running out (the writes it was protecting are then delivered again from the
caller's outbox once it is back, under the lock like any delivery).
"""

from __future__ import annotations

import logging
import secrets
import threading
from collections.abc import Callable, Sequence
from typing import Protocol

import grpc

from memorygraph.errors import FailedPrecondition, RequestError, Unavailable
from memorygraph.graph.peering import WorkerEndpoint
from memorygraph.store.split import Busy
from memorygraph.v1 import workers_pb2 as wpb
from memorygraph.v1 import workers_pb2_grpc as wgrpc

__all__ = ["LEASE_SECONDS", "GrpcPeer", "MemberMoves", "PeerServicer"]

log = logging.getLogger("memorygraph.server")

# How long another worker may hold this one's writers' lock without releasing it.
LEASE_SECONDS = 10.0
# How long a call to another worker may take (the lock's own wait is added to a Lock).
CALL_SECONDS = 10.0
_MAX_SCAN = 4096  # pairs one range read returns at most
_READ_BYTES = 4 << 20  # values one read returns at most (one at least, whatever its size)


class MemberMoves(Protocol):
    """A pod member's part in moves between members (`servicers.moving.PodMover`)."""

    def hand_over(self, shard: int, owner: int, epoch: int, *, held: bool) -> None:
        """Record that `shard` is member `owner`'s from shard epoch `epoch` on; `held`:
        whether the caller holds this member's writers' lock (FailedPrecondition when the
        shard is this member's and it is not)."""

    def view(self) -> tuple[list[int], list[int]]:
        """Each shard's owner and shard epoch, as this member serves them."""
        ...

    def map_state(self) -> tuple[int, int]:
        """The epoch of the map this member serves by, and how many members it names."""
        ...

    def unfinished(self) -> tuple[int, int] | None:
        """The shard and source of a move to this member left unfinished, if any."""
        ...

    def undelivered(self) -> int:
        """Parts of this member's writes still to deliver to other members."""
        ...

    def take(self, shard: int) -> tuple[int, int, float]:
        """Move `shard` here: its epoch, the keys copied, the seconds writes were paused."""
        ...


class PeerServicer(wgrpc.WorkerPeerServicer):
    """This worker, served to the others."""

    def __init__(
        self,
        endpoint: WorkerEndpoint,
        on_map: Callable[[], object] | None = None,
        members: MemberMoves | None = None,
    ) -> None:
        """`on_map()` takes the shard map again (Reassign, and when a lease runs out: its
        holder may have changed the map meanwhile); `members`: a pod member's moves."""
        self.endpoint = endpoint
        self.on_map = on_map
        self.members = members
        self._mutex = threading.Lock()
        self._lease = ""  # the lease of the lock a peer holds now ("" when none)
        self._expiry: threading.Timer | None = None

    def Read(
        self, request: wpb.PeerReadRequest, context: grpc.ServicerContext
    ) -> wpb.PeerReadResponse:
        if request.scan and request.event_shard:
            limit = min(request.limit or _MAX_SCAN, _MAX_SCAN)
            events, resume = self.endpoint.shard_events(
                request.event_shard - 1, request.start, request.end, limit
            )
            return wpb.PeerReadResponse(
                keys=[k for k, _ in events], values=[v for _, v in events], resume=resume
            )
        if request.scan:
            limit = min(request.limit or _MAX_SCAN, _MAX_SCAN)
            pairs = self.endpoint.scan_chunk(
                request.family, request.start, request.end, request.reverse, limit, request.values
            )
            return wpb.PeerReadResponse(
                keys=[k for k, _ in pairs], values=[v for _, v in pairs] if request.values else []
            )
        values = self.endpoint.multi_get(request.family, list(request.keys))
        answered: list[bytes | None] = []
        size = 0
        for value in values:  # the first ones, within the budget (one at least)
            size += len(value or b"")
            if answered and size > _READ_BYTES:
                break
            answered.append(value)
        return wpb.PeerReadResponse(
            values=[v if v is not None else b"" for v in answered],
            found=[v is not None for v in answered],
        )

    def Lock(
        self, request: wpb.PeerLockRequest, context: grpc.ServicerContext
    ) -> wpb.PeerLockResponse:
        try:
            self.endpoint.lock(request.origin)
        except Busy as busy:  # an answer, not an error of this server's
            context.set_code(grpc.StatusCode.UNAVAILABLE)
            context.set_details(str(busy))
            return wpb.PeerLockResponse()
        lease = secrets.token_hex(8)
        seconds = min(request.lease_seconds or LEASE_SECONDS, LEASE_SECONDS)
        expiry = threading.Timer(seconds, self._expire, [lease])
        expiry.daemon = True
        with self._mutex:
            self._lease, self._expiry = lease, expiry
        expiry.start()
        return wpb.PeerLockResponse(lease=lease)

    def _release(self, lease: str) -> bool:
        with self._mutex:
            if not lease or lease != self._lease:
                return False
            if self._expiry is not None:
                self._expiry.cancel()
            self._lease, self._expiry = "", None
            self.endpoint.unlock()
            return True

    def close(self) -> None:
        """The server stops: a lock a peer still holds is released now, without taking the
        map again (the store is about to close)."""
        with self._mutex:
            if self._expiry is not None:
                self._expiry.cancel()
            held, self._lease, self._expiry = bool(self._lease), "", None
        if held:
            self.endpoint.unlock()

    def _expire(self, lease: str) -> None:
        with self._mutex:
            if not lease or lease != self._lease:
                return
            self._lease, self._expiry = "", None
        log.warning("a worker held this worker's writers' lock past its lease; released")
        try:
            if self.on_map is not None:
                # A move's holder may have handed a shard over, then died: the map is taken
                # again before this worker's writers go on.
                self.on_map()
        except Exception:
            log.exception("the shard map could not be read again")
        finally:
            self.endpoint.unlock()

    def Reassign(
        self, request: wpb.PeerReassignRequest, context: grpc.ServicerContext
    ) -> wpb.PeerReassignResponse:
        with self._mutex:  # the lease cannot run out meanwhile
            held = bool(request.lease) and request.lease == self._lease
            # A hand-over whose caller gave up waiting is not taken under its lock.
            remaining = context.time_remaining()
            held = held and (remaining is None or remaining > 0)
            if request.handover:
                self._hand_over(request, held)
                return wpb.PeerReassignResponse()
            if self.on_map is not None:
                self.on_map()  # a newer map is taken in any case
            if not held:
                context.set_code(grpc.StatusCode.FAILED_PRECONDITION)
                context.set_details("the caller does not hold this worker's writers' lock")
        return wpb.PeerReassignResponse()

    def _pod_member(self) -> MemberMoves:
        if self.members is None:
            raise FailedPrecondition("this worker is not a pod member: shards move by MoveShard")
        return self.members

    def _hand_over(self, request: wpb.PeerReassignRequest, held: bool) -> None:
        self._pod_member().hand_over(request.shard, request.owner, request.shard_epoch, held=held)

    def Shards(
        self, request: wpb.PeerShardsRequest, context: grpc.ServicerContext
    ) -> wpb.PeerShardsResponse:
        member = self._pod_member()
        owners, epochs = member.view()
        map_epoch, members = member.map_state()
        response = wpb.PeerShardsResponse(
            owners=owners, epochs=epochs, map_epoch=map_epoch, members=members
        )
        response.undelivered = member.undelivered()
        unfinished = member.unfinished()
        if unfinished is not None:
            response.unfinished_shard, response.unfinished_source = unfinished
        return response

    def TakeShard(
        self, request: wpb.PeerTakeShardRequest, context: grpc.ServicerContext
    ) -> wpb.PeerTakeShardResponse:
        epoch, copied, fenced = self._pod_member().take(request.shard)
        return wpb.PeerTakeShardResponse(
            shard_epoch=epoch, copied_keys=copied, fenced_seconds=fenced
        )

    def Drop(
        self, request: wpb.PeerDropRequest, context: grpc.ServicerContext
    ) -> wpb.PeerDropResponse:
        self.endpoint.drop(request.shard)
        return wpb.PeerDropResponse()

    def Unlock(
        self, request: wpb.PeerUnlockRequest, context: grpc.ServicerContext
    ) -> wpb.PeerUnlockResponse:
        self._release(request.lease)
        return wpb.PeerUnlockResponse()

    def Apply(
        self, request: wpb.PeerApplyRequest, context: grpc.ServicerContext
    ) -> wpb.PeerApplyResponse:
        with self._mutex:  # held while applying: the lease cannot run out meanwhile
            if request.lease and request.lease == self._lease:
                self.endpoint.apply(request.origin, request.sequence, request.part, locked=True)
                return wpb.PeerApplyResponse()
        # No lease, or one that ran out: applied under the lock, like a late delivery.
        self.endpoint.apply(request.origin, request.sequence, request.part, locked=False)
        return wpb.PeerApplyResponse()


class GrpcPeer:
    """Another worker over gRPC (`store.split.Peer`)."""

    def __init__(
        self,
        channel: grpc.Channel,
        me: int,
        worker: int,
        *,
        metadata: Callable[[], Sequence[tuple[str, str]]] = tuple,
        lock_seconds: float = 2.0,
        lease_seconds: float = LEASE_SECONDS,
    ) -> None:
        """`metadata()`: what each call presents (the server's own key, when auth is on).
        `lease_seconds`: how long a writers' lock this worker takes there lasts should this
        worker die holding it (the other worker's writes wait that long)."""
        self._stub = wgrpc.WorkerPeerStub(channel)
        self._me, self._worker = me, worker
        self._metadata = metadata
        self._lock_seconds = lock_seconds
        self._lease_seconds = lease_seconds
        self._held = threading.local()  # the lease this thread's write holds

    def _unreachable(self, error: grpc.RpcError) -> Unavailable:
        code = error.code() if isinstance(error, grpc.Call) else None
        if code is grpc.StatusCode.UNAVAILABLE and isinstance(error, grpc.Call):
            details = error.details() or ""
            if "try again" in details:
                return Busy(details)
        return Unavailable(
            f"worker {self._worker}, which serves part of this request's shards, did not answer "
            f"({code.name if code else 'no status'}); try again"
        )

    def _read(self, request: wpb.PeerReadRequest) -> wpb.PeerReadResponse:
        try:
            response: wpb.PeerReadResponse = self._stub.Read(
                request, timeout=CALL_SECONDS, metadata=self._metadata()
            )
        except grpc.RpcError as error:
            raise self._unreachable(error) from None
        return response

    def get(self, cf: str, key: bytes) -> bytes | None:
        return self.multi_get(cf, [key])[0]

    def multi_get(self, cf: str, keys: Sequence[bytes]) -> list[bytes | None]:
        """Values of `keys`: asked again for those a response had no room for."""
        found: list[bytes | None] = []
        while len(found) < len(keys):
            response = self._read(wpb.PeerReadRequest(family=cf, keys=list(keys[len(found) :])))
            found += [
                v if f else None for v, f in zip(response.values, response.found, strict=True)
            ]
        return found

    def scan_chunk(
        self, cf: str, start: bytes, end: bytes, reverse: bool, limit: int, values: bool
    ) -> list[tuple[bytes, bytes]]:
        response = self._read(
            wpb.PeerReadRequest(
                family=cf,
                scan=True,
                start=start,
                end=end,
                reverse=reverse,
                limit=limit,
                values=values,
            )
        )
        if values:
            return list(zip(response.keys, response.values, strict=True))
        return [(key, b"") for key in response.keys]

    def shard_events(
        self, shard: int, start: bytes, end: bytes, limit: int
    ) -> tuple[list[tuple[bytes, bytes]], bytes]:
        """The worker's events of `shard` in a key range, a read at a time (see
        `WorkerEndpoint.shard_events`)."""
        response = self._read(
            wpb.PeerReadRequest(
                family="events",
                scan=True,
                start=start,
                end=end,
                limit=limit,
                values=True,
                event_shard=shard + 1,
            )
        )
        return list(zip(response.keys, response.values, strict=True)), response.resume

    def lock(self, origin: int, lease_seconds: float | None = None) -> None:
        """Take the worker's writers' lock, under a lease of `lease_seconds` (default: this
        peer's)."""
        lease = lease_seconds or self._lease_seconds
        try:
            response = self._stub.Lock(
                wpb.PeerLockRequest(origin=self._me, lease_seconds=lease),
                timeout=self._lock_seconds + CALL_SECONDS,
                metadata=self._metadata(),
            )
        except grpc.RpcError as error:
            raise self._unreachable(error) from None
        self._held.lease = response.lease

    def unlock(self) -> None:
        lease = getattr(self._held, "lease", "")
        self._held.lease = ""
        if lease:
            try:
                self._stub.Unlock(
                    wpb.PeerUnlockRequest(lease=lease),
                    timeout=CALL_SECONDS,
                    metadata=self._metadata(),
                )
            except grpc.RpcError as error:  # the lease runs out there on its own
                raise self._unreachable(error) from None

    def reassign(self) -> None:
        """Have the worker take the shard map again, under the lock this thread holds there."""
        try:
            self._stub.Reassign(
                wpb.PeerReassignRequest(lease=getattr(self._held, "lease", "")),
                timeout=CALL_SECONDS,
                metadata=self._metadata(),
            )
        except grpc.RpcError as error:
            raise self._refused(error) from None

    def hand_over(self, shard: int, owner: int, epoch: int, timeout: float = CALL_SECONDS) -> None:
        """Have the pod member record that `shard` is member `owner`'s from shard epoch
        `epoch` on, under the lock this thread holds there (needed where the shard was)."""
        request = wpb.PeerReassignRequest(
            lease=getattr(self._held, "lease", ""),
            handover=True,
            shard=shard,
            owner=owner,
            shard_epoch=epoch,
        )
        try:
            self._stub.Reassign(request, timeout=timeout, metadata=self._metadata())
        except grpc.RpcError as error:
            raise self._refused(error) from None

    def shards(self, timeout: float = CALL_SECONDS) -> tuple[list[int], list[int]]:
        """The pod member's view: each shard's owner and shard epoch."""
        try:
            response = self._stub.Shards(
                wpb.PeerShardsRequest(), timeout=timeout, metadata=self._metadata()
            )
        except grpc.RpcError as error:
            raise self._refused(error) from None
        return list(response.owners), list(response.epochs)

    def drop(self, shard: int) -> None:
        try:
            self._stub.Drop(
                wpb.PeerDropRequest(shard=shard), timeout=CALL_SECONDS, metadata=self._metadata()
            )
        except grpc.RpcError as error:
            raise self._refused(error) from None

    def _refused(self, error: grpc.RpcError) -> RequestError:
        """A move's call the worker refused (FAILED_PRECONDITION: its answer, with its
        reason), or one that did not reach it."""
        if isinstance(error, grpc.Call) and error.code() is grpc.StatusCode.FAILED_PRECONDITION:
            return FailedPrecondition(f"worker {self._worker}: {error.details()}")
        return self._unreachable(error)

    def apply(self, origin: int, sequence: int, part: bytes, *, locked: bool) -> None:
        lease = getattr(self._held, "lease", "") if locked else ""
        try:
            self._stub.Apply(
                wpb.PeerApplyRequest(origin=origin, sequence=sequence, part=part, lease=lease),
                timeout=CALL_SECONDS,
                metadata=self._metadata(),
            )
        except grpc.RpcError as error:
            raise self._unreachable(error) from None
