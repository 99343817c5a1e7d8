"""How the graph's writes reach the store: one writer at a time, one batch each, group commit.

Every write runs as one `Transaction` under the writers' lock (reads of the graph state and the
write they lead to cannot interleave with another writer), then commits as one batch and waits,
outside the lock, for the sync that makes it durable. Node creation — the write every turn
makes — goes through the batcher instead: concurrent requests share one transaction, one write
and one sync. Reads take no lock.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, TypeVar

from memorygraph import deadline
from memorygraph.graph.batch import Batcher, Request
from memorygraph.graph.tx import Transaction
from memorygraph.store import GraphStore, keys
from memorygraph.store.changes import UnwritableChange

__all__ = ["Writer"]

log = logging.getLogger("memorygraph.graph")

T = TypeVar("T")


def _checked(work: Callable[[Transaction], Any], tx: Transaction) -> Any:
    deadline.check()  # the wait for its turn may have used up the caller's time
    return work(tx)


class Writer:
    def __init__(self, store: GraphStore, clock: Callable[[], int]) -> None:
        self.store = store
        self.clock = clock
        self._lock = threading.Lock()
        self._batcher = Batcher(self._apply_batch, store.wait_durable)

    @contextmanager
    def transaction(self) -> Iterator[Transaction]:
        """A transaction of its own, committed (and durable) when the block ends without an
        error; an error leaves nothing written."""
        with self._lock, self.store.writing():
            deadline.check()  # the wait for the lock may have used up the caller's time
            tx = Transaction(self.store, self.clock())
            yield tx
            ticket = self.store.stage(tx.changes())
            tx.sequence = self.store.events.last_sequence
        # Outside the lock, so that other writers join the same group commit.
        self.store.wait_durable(ticket)

    def join(self, timeout: float) -> bool:
        """Take the writers' lock for another worker's write (see `store.split`): no write of
        this worker's runs until `leave`. False when not granted within `timeout` seconds."""
        return self._lock.acquire(timeout=timeout)

    def leave(self) -> None:
        self._lock.release()

    def apply_part(self, origin: int, sequence: int, part: bytes, *, locked: bool) -> None:
        """Apply another worker's outbox entry (under the lock its write holds here when
        `locked`, else under the writers' lock). Its events are numbered by this worker's
        clock, as its own writes' are (see `idle_bound`)."""
        if locked:
            self.store.apply_part(origin, sequence, part, now=self.clock())
            return
        with self._lock:
            self.store.apply_part(origin, sequence, part, now=self.clock())

    def idle_bound(self) -> int | None:
        """While no write is under way, the highest event sequence below every one a write
        starting from now on can make (its events' ticks follow a clock read after this one,
        under the writers' lock); None while one is under way."""
        now = self.clock()
        if self._lock.locked():
            return None
        return ((now - keys.SEQUENCE_EPOCH) << keys.SHARD_BITS) - 1

    def batched(self, work: Callable[[Transaction], T]) -> T:
        """`work(tx)` applied with other requests' work in one shared batch, kept only if it
        succeeds; returns its result once the batch is durable."""
        result: T = self._batcher.submit(work)
        return result

    def _apply_batch(self, requests: list[Request]) -> int:
        """Each request's work in a nested transaction of one shared transaction (a lone
        request's in that transaction itself), kept only if it succeeds; then the whole batch
        staged as one write.

        Should the shared change be one the store cannot write (the work checks what it
        writes, so it should not be), each request that succeeded is applied again on its
        own: whatever one of them holds fails that request alone, never its batch."""
        with self._lock, self.store.writing():
            tx = Transaction(self.store, self.clock())
            # A lone request needs no nested transaction: if it fails, nothing is staged.
            alone = len(requests) == 1
            for request in requests:
                nested = tx if alone else tx.nested()
                try:
                    request.outcome = request.context.run(_checked, request.work, nested)
                except Exception as exc:
                    request.failure = exc
                else:
                    if not alone:
                        nested.merge()
            applied = [request for request in requests if request.failure is None]
            if not applied:
                return 0
            try:
                return self.store.stage(tx.changes())
            except UnwritableChange:  # nothing was written
                if len(applied) == 1:
                    raise
                log.exception(
                    "a batch of %d writes could not be staged; staging each alone", len(applied)
                )
            return self._apply_alone(applied)

    def _apply_alone(self, requests: list[Request]) -> int:
        """Each request in a transaction and a write of its own (under the writers' lock);
        the ticket of the last write, which covers the others."""
        ticket = 0
        for request in requests:
            tx = Transaction(self.store, self.clock())
            try:
                request.outcome = request.context.run(_checked, request.work, tx)
                ticket = self.store.stage(tx.changes()) or ticket
            except Exception as exc:
                request.failure = exc
                request.outcome = None
        return ticket
