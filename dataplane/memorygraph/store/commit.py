"""Group commit: many writes, one fsync, then all of them are acknowledged.

Writers append their batch to the write-ahead log without syncing (cheap, and visible to readers
at once), take a ticket, and wait. One committer thread syncs the log whenever tickets are
pending; a single sync covers every batch appended before it, so all tickets up to that point are
released together. While one sync runs, the next group gathers. rocksdict holds the GIL while it
writes, so a per-request fsync would stall the whole server; this keeps it to one per group.
"""

from __future__ import annotations

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
        self._issued_mark = 0  # caller's position (the event sequence) of the last ticket
        # One lock, two conditions: a new ticket wakes only the committer, a finished sync
        # only the writers waiting on it (not every waiter on every ticket).
        self._lock = threading.Lock()
        self._pending = threading.Condition(self._lock)
        self._durable = threading.Condition(self._lock)
        self._issued = 0  # last ticket handed out
        self._synced = 0  # every ticket <= this is durable
        self._failure: BaseException | None = None
        self._closing = False
        self._thread = threading.Thread(target=self._run, name="group-commit", daemon=True)
        self._thread.start()

    def ticket(self, mark: int = 0) -> int:
        """Call right after appending a batch (under the writers' lock): its place in line.

        `mark` is handed to `on_durable` once the batch is durable (the event sequence)."""
        with self._lock:
            self._issued += 1
            self._issued_mark = max(self._issued_mark, mark)
            self._pending.notify()
            return self._issued

    def wait(self, ticket: int) -> None:
        """Block until the batch behind `ticket` is on stable storage."""
        with self._lock:
            while self._synced < ticket and self._failure is None:
                self._durable.wait()
            if self._synced < ticket:
                raise CommitFailed("the write-ahead log could not be synced") from self._failure

    def _run(self) -> None:
        while True:
            with self._lock:
                while self._issued == self._synced and not self._closing:
                    self._pending.wait()
                if self._issued == self._synced:  # closing with nothing pending
                    return
                target, first, mark = self._issued, self._synced + 1, self._issued_mark
            started = time.perf_counter()
            try:
                self._sync()
            except Exception as exc:
                log.exception("syncing the write-ahead log failed; refusing further writes")
                with self._lock:
                    self._failure = exc
                    self._durable.notify_all()
                return
            if self._on_group is not None:
                self._on_group(target - first + 1, time.perf_counter() - started)
            with self._lock:
                self._synced = target
                self._durable.notify_all()
            if self._on_durable is not None:
                self._on_durable(mark)

    @property
    def failed(self) -> bool:
        return self._failure is not None

    def close(self) -> None:
        """Sync what is pending, then stop the committer thread."""
        with self._lock:
            self._closing = True
            self._pending.notify()
        self._thread.join()
