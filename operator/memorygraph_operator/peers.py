"""What the operator asks a graph's pods on their peer port: which shards each serves
(``Shards``) and to take a shard from its owner (``TakeShard``).

The one module of the operator that speaks gRPC or loads the data plane's bindings; it presents
the graph's peer key, as the pods do to each other. Errors come back as :class:`PeerError` with
the gRPC status name and the pod's message, never as gRPC's own exceptions. gRPC and the
bindings load on the first call: an operator none of whose graphs has shards to move never
loads them.
"""

from __future__ import annotations

from dataclasses import dataclass
from types import ModuleType
from typing import Any, Protocol

from memorygraph_operator.render.context import MemberView

__all__ = ["GrpcPeers", "PeerError", "Peers", "Taken"]

# How long a pod may take to say which shards it serves.
VIEW_SECONDS = 3.0
# How long one move may take, copy included. A move cut short by this deadline goes on where
# it stopped when asked again.
TAKE_SECONDS = 120.0


class PeerError(Exception):
    """A pod did not answer, or refused: ``code`` is the gRPC status name."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message


@dataclass(frozen=True)
class Taken:
    """A finished move, as its target reports it."""

    shard_epoch: int
    copied_keys: int
    fenced_seconds: float


class Peers(Protocol):
    """A graph's pods as the operator reaches them."""

    async def view(self, address: str, key: str) -> MemberView:
        """The shards as the pod at ``address`` serves them."""
        ...

    async def take(self, address: str, key: str, shard: int) -> Taken:
        """Move ``shard`` onto the pod at ``address``; when this returns, it owns it."""
        ...


class GrpcPeers:
    """:class:`Peers` over gRPC, one short-lived channel per call (a graph's pods are asked a
    few times per reconcile, and an idle channel per pod of every graph would pile up)."""

    def __init__(self, view_seconds: float = VIEW_SECONDS, take_seconds: float = TAKE_SECONDS):
        self.view_seconds = view_seconds
        self.take_seconds = take_seconds

    async def view(self, address: str, key: str) -> MemberView:
        aio, wpb, wgrpc = _grpc()
        async with aio.insecure_channel(address) as channel:
            stub = wgrpc.WorkerPeerStub(channel)
            try:
                got = await stub.Shards(
                    wpb.PeerShardsRequest(), timeout=self.view_seconds, metadata=_auth(key)
                )
            except aio.AioRpcError as error:
                raise _error(error) from None
        unfinished = None
        if got.HasField("unfinished_shard"):
            unfinished = (got.unfinished_shard, got.unfinished_source)
        return MemberView(
            tuple(got.owners),
            tuple(got.epochs),
            got.map_epoch,
            got.members,
            unfinished,
            got.undelivered,
        )

    async def take(self, address: str, key: str, shard: int) -> Taken:
        aio, wpb, wgrpc = _grpc()
        async with aio.insecure_channel(address) as channel:
            stub = wgrpc.WorkerPeerStub(channel)
            try:
                got = await stub.TakeShard(
                    wpb.PeerTakeShardRequest(shard=shard),
                    timeout=self.take_seconds,
                    metadata=_auth(key),
                )
            except aio.AioRpcError as error:
                raise _error(error) from None
        return Taken(got.shard_epoch, got.copied_keys, got.fenced_seconds)


def _auth(key: str) -> tuple[tuple[str, str], ...]:
    return (("authorization", f"Bearer {key}"),)


def _grpc() -> tuple[Any, ModuleType, ModuleType]:
    """grpc.aio and the peer service's bindings, loaded on first use."""
    from grpc import aio
    from memorygraph.v1 import workers_pb2, workers_pb2_grpc

    return aio, workers_pb2, workers_pb2_grpc


def _error(error: Any) -> PeerError:
    """The PeerError for grpc.aio's AioRpcError ``error``."""
    return PeerError(error.code().name, error.details() or "no answer")
