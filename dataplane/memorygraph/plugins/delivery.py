"""Background delivery of after-hooks, bounded in calls, in bytes and in time.

After-hooks run once a change is committed and cannot affect it, so a slow or unreachable
webhook service must neither delay the caller nor hold memory without bound. Deliveries wait in
a queue bounded by count and by bytes (each call's `held_bytes`: its content, metadata and
details, charged to a budget that every pipeline of the server shares); one that does not fit
is refused, for the caller to count as dropped. A few daemon threads deliver them in order.

`close(timeout)` takes no more deliveries and waits at most `timeout` for the queue to drain;
what is still queued then is handed back undelivered, and deliveries in progress are abandoned:
their threads are daemons, so they never hold up the process's exit.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

from memorygraph.sizes import ByteBudget

__all__ = ["AfterHookQueue", "Delivery"]

WORKERS = 4


@dataclass(slots=True)
class Delivery:
    run: Callable[[], None]
    size: int  # bytes charged to the budget while it waits and runs
    labels: tuple[str, str]  # (plugin, hook), to count it by


class AfterHookQueue:
    def __init__(self, *, max_calls: int, budget: ByteBudget, workers: int = WORKERS) -> None:
        self.max_calls = max_calls
        self.budget = budget
        self.workers = workers
        self._queue: deque[Delivery] = deque()
        self._running = 0  # deliveries under way
        self._threads = 0
        self._closed = False
        self._cond = threading.Condition()

    def submit(self, delivery: Delivery) -> bool:
        """Queue `delivery`; False (nothing queued) when it does not fit or the queue is
        closed."""
        with self._cond:
            if self._closed or len(self._queue) >= self.max_calls:
                return False
            if not self.budget.take(delivery.size):
                return False
            self._queue.append(delivery)
            if self._threads < min(self.workers, len(self._queue) + self._running):
                self._threads += 1
                threading.Thread(target=self._work, name="plugin-after", daemon=True).start()
            self._cond.notify()
            return True

    def _work(self) -> None:
        while True:
            with self._cond:
                while not self._queue and not self._closed:
                    self._cond.wait()
                if not self._queue:
                    self._threads -= 1
                    return
                delivery = self._queue.popleft()
                self._running += 1
            try:
                delivery.run()
            finally:
                self.budget.give(delivery.size)
                with self._cond:
                    self._running -= 1
                    self._cond.notify_all()

    @property
    def running(self) -> int:
        """Deliveries under way."""
        return self._running

    def close(self, timeout: float | None = None) -> list[Delivery]:
        """Take no more deliveries and wait for those queued, at most `timeout` seconds (None:
        until they are done); returns those still queued then, which are never delivered.
        Deliveries under way by then go on in the background, if the process does."""
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._cond:
            self._closed = True
            self._cond.notify_all()
            while self._queue or self._running:
                left = None if deadline is None else deadline - time.monotonic()
                if left is not None and left <= 0:
                    break
                self._cond.wait(left)
            dropped = list(self._queue)
            self._queue.clear()
        for delivery in dropped:
            self.budget.give(delivery.size)
        return dropped
