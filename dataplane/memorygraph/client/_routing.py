"""Where a client sends each call: straight to the worker owning its shard, or to the graph.

A graph served by several workers publishes its shard map (`GetShardMap`): the number of
shards, each worker's own address, the worker owning each shard, and the map's epoch. Both
clients fetch it through the graph's address on their first call about one session, node or
template, then send each such call to its owner's address, naming the epoch in the call's
metadata. A worker that no longer owns the shard answers with a redirect (`WrongOwner`) and
does nothing; the client fetches the map again and sends the call once more, and after a
second redirect sends it to the graph's address, which passes it on to the owner.

Everything else goes to the graph's address too: listings over every shard, Ingest and
restores, calls while the map is unknown, and calls whose owner's channel is not connected
(yet, or any more). A server of one process publishes no addresses, so a client of one
talks to it as before. This module decides; the twins do the I/O (`_sync`, `_async`).
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from typing import Any

from memorygraph.codec.routes import ROUTES, place_new, shard_of
from memorygraph.errors import WrongOwner
from memorygraph.v1 import graph_pb2 as pb

__all__ = ["ATTEMPTS", "Routes"]

# A call is sent at most this many times: to the owner in the map, to the owner in a fresh
# map after a redirect, then to the graph's address.
ATTEMPTS = 3
# After a failed map fetch, calls go to the graph's address for this long before trying again.
_RETRY_SECONDS = 5.0


@dataclass
class Routes:
    """The shard map a client knows, and the calls it routes with it."""

    enabled: bool = True
    epoch: int = 0
    shards: int = 0
    owners: list[str] = field(default_factory=list)  # each shard's owner's address ("": none)
    stale: bool = True  # fetch the map before the next call about one shard
    _next_fetch: float = 0.0
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def wants_map(self, method: str) -> bool:
        """Whether to fetch the map before sending `method`: True for one caller at a time
        (the others meanwhile route with what they know)."""
        if not (self.enabled and self.stale and method in ROUTES):
            return False
        with self._lock:
            now = time.monotonic()
            if now < self._next_fetch:
                return False
            self._next_fetch = now + _RETRY_SECONDS
            return True

    def learn(self, shard_map: pb.ShardMap) -> None:
        """Take a map fetched from the graph."""
        workers = list(shard_map.workers)
        owners = [workers[o] if 0 <= o < len(workers) else "" for o in shard_map.owners]
        valid = shard_map.shards > 0 and len(owners) == shard_map.shards
        with self._lock:
            if not valid or not any(owners):  # one process: everything goes to its address
                self.enabled = False
                return
            self.epoch, self.shards, self.owners = shard_map.epoch, shard_map.shards, owners
            self.stale, self._next_fetch = False, 0.0

    def unknown(self, *, forever: bool) -> None:
        """The map could not be fetched: route nothing for a while, or ever (a server that
        does not have the call)."""
        with self._lock:
            if forever:
                self.enabled = False
            self._next_fetch = time.monotonic() + _RETRY_SECONDS

    def forget(self, redirect: WrongOwner) -> None:
        """A worker redirected a call: the map is stale. Fetch it again before the next call;
        until then, calls about that shard go to the owner the redirect names."""
        with self._lock:
            if 0 <= redirect.shard < self.shards and redirect.epoch >= self.epoch:
                self.owners[redirect.shard] = redirect.owner
            self.stale, self._next_fetch = True, 0.0

    def destination(self, method: str, request: Any) -> tuple[str, tuple[tuple[str, str], ...]]:
        """The address to send `method` to ("" for the graph's address) and the metadata to
        add (the epoch, when it goes to an owner). A new session or agent gets its id here."""
        route = ROUTES.get(method)
        if route is None or not self.enabled or not self.shards:
            return "", ()
        place_new(method, request)
        key = route(request)
        if key is None:
            return "", ()
        with self._lock:
            shard = shard_of(key, self.shards)
            if shard is None:
                return "", ()
            owner, epoch = self.owners[shard], self.epoch
        return owner, ((WrongOwner.EPOCH_KEY, str(epoch)),) if owner else ()
