"""Group commit: many writes, one fsync, then all of them are acknowledged.

Writers append their batch to the write-ahead log without syncing (cheap, and visible to readers
at once), take a ticket, and wait. The first waiter to find no sync running leads: it syncs the
log itself, covering every batch appended before the sync began, and releases all tickets up to
that point together. Writers arriving during a sync wait for it, and one of those left uncovered
leads the next. rocksdict holds the GIL while it writes, so a per-request fsync would stall the
whole server; this keeps it to one per group, and a lone writer syncs without handing over to
another thread and back.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections.abc import Callable

from memorygraph.errors import MemoryGraphError

__all__ = ["CommitFailed", "GroupCommitter"]

log = logging.getLogger("memorygraph.store.commit")


class CommitFailed(MemoryGraphError):
    """The write-ahead log could not be synced: the write is not known to be durable."""


class GroupCommitter:
    def __init__(
        self,
        sync: Callable[[], None],
        *,
        on_group: Callable[[int, float], None] | None = None,
        on_durable: Callable[[int], None] | None = None,
    ) -> None:
        self._sync = sync
        self._on_group = on_group
        self._on_durable = on_durable
        self._lock = threading.Lock()
        self._durable = threading.Condition(self._lock)  # a sync finished (or failed)
        self._issued = 0  # last ticket handed out
        self._issued_mark = 0  # caller's position (the event sequence) of the last ticket
        self._synced = 0  # every ticket <= this is durable
        self._syncing = False
        self._failure: BaseException | None = None

    def ticket(self, mark: int = 0) -> int:
        """Call right after appending a batch (under the writers' lock): its place in line.

        `mark` is handed to `on_durable` once the batch is durable (the event sequence)."""
        with self._lock:
            self._issued += 1
            self._issued_mark = max(self._issued_mark, mark)
            return self._issued

    def wait(self, ticket: int) -> None:
        """Block until the batch behind `ticket` is on stable storage, syncing it if no one
        else is."""
        with self._lock:
            self._wait_locked(ticket)

    def _wait_locked(self, ticket: int) -> None:
        while self._synced < ticket:
            if self._failure is not None:
                raise CommitFailed("the write-ahead log could not be synced") from self._failure
            if self._syncing:
                self._durable.wait()
            else:
                self._lead()

    def _lead(self) -> None:
        """Sync everything issued so far. Called holding the lock; the sync runs without it,
        so that more batches can be appended and ticketed meanwhile."""
        self._syncing = True
        target, first, mark = self._issued, self._synced + 1, self._issued_mark
        self._lock.release()
        failure: Exception | None = None
        try:
            started = time.perf_counter()
            self._sync()
            elapsed = time.perf_counter() - started
        except Exception as exc:
            log.exception("syncing the write-ahead log failed; refusing further writes")
            failure = exc
        else:
            if self._on_group is not None:
                self._on_group(target - first + 1, elapsed)
        finally:
            self._lock.acquire()
            self._syncing = False
            self._durable.notify_all()
        if failure is not None:
            self._failure = failure
            return
        self._synced = target
        if self._on_durable is not None:
            # Under the lock, so that listeners see durable positions in increasing order.
            self._on_durable(mark)

    @property
    def failed(self) -> bool:
        return self._failure is not None

    def close(self) -> None:
        """Sync what is pending."""
        # A failed sync was logged and its writers were told; closing goes on regardless.
        with self._lock, contextlib.suppress(CommitFailed):
            self._wait_locked(self._issued)
