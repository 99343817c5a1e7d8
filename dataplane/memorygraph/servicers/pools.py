"""The threads that run unary calls: a few take calls as they come; more take a call only once
it has waited.

One process runs one thread of Python at a time. A thread per call in flight (what a plain
`ThreadPoolExecutor` of 64 becomes under 32 concurrent calls) starts every call with a thread
switch, a dear thing on a virtual machine, and has 32 threads queue for the interpreter. With a
few threads and the calls queued for them, a thread that finishes a call takes the next one
without sleeping: GetNode at 32 in flight answered 1.27 times as many calls a second on 4
threads as on 64.

A call can also wait in its thread: for the worker that owns its shard, for a plugin's webhook,
for a caller that never sends its request. Were the few threads all waiting, every call would
queue behind them; so a call that has waited `patience` seconds goes to a spare thread, up to
`limit` threads in all. A call that waits a long time (a stream) belongs on a pool of its own.

A watcher thread does the handing over: it sleeps while the core threads keep up, and wakes
at most about once per `patience` while calls are queued. Threads start outside the pool's
lock, so that starting many spares at once holds up no call.
"""

from __future__ import annotations

import itertools
import logging
import threading
import time
from collections import deque
from collections.abc import Callable
from concurrent import futures
from typing import Any, ParamSpec, TypeVar

__all__ = ["PATIENCE_SECONDS", "ElasticPool"]

log = logging.getLogger("memorygraph.server")

# How long a call waits for a core thread before a spare takes it: well above what the calls
# queued at 256 in flight wait under load (a few milliseconds), well below a caller's patience.
PATIENCE_SECONDS = 0.02

P = ParamSpec("P")
T = TypeVar("T")


class _Call:
    __slots__ = ("args", "fn", "future", "kwargs", "queued")

    def __init__(
        self, future: futures.Future[Any], fn: Callable[..., Any], args: Any, kwargs: Any
    ) -> None:
        self.future = future
        self.fn = fn
        self.args = args
        self.kwargs = kwargs
        self.queued = time.monotonic()

    def run(self) -> None:
        if not self.future.set_running_or_notify_cancel():
            return
        try:
            result = self.fn(*self.args, **self.kwargs)
        except BaseException as exc:  # the future carries whatever the call raised
            self.future.set_exception(exc)
        else:
            self.future.set_result(result)


class ElasticPool(futures.Executor):
    """An executor with `core` threads taking work as it comes and up to `limit - core` spares,
    each taking one piece of work that has waited `patience` seconds (see the module)."""

    def __init__(
        self,
        core: int,
        limit: int,
        *,
        patience: float = PATIENCE_SECONDS,
        name: str = "rpc",
    ) -> None:
        if not 1 <= core <= limit:
            raise ValueError(f"need 1 <= core ({core}) <= limit ({limit})")
        self.core = core
        self.limit = limit
        self.patience = patience
        self.name = name
        lock = threading.Lock()
        self._work = threading.Condition(lock)  # core threads wait here for a call
        self._spare = threading.Condition(lock)  # spares wait here to be sent one
        self._watch = threading.Condition(lock)  # the watcher waits here for calls to queue
        self._queue: deque[_Call] = deque()
        self._threads: list[threading.Thread] = []
        self._named = 0
        self._cores = 0  # core threads started or about to be
        self._spares = 0  # spare threads started or about to be
        # Waiting threads no one has woken yet: one woken is no longer free for another call.
        self._idle_cores = 0
        self._idle_spares = 0
        self._sent = 0  # spares sent for a call that have not taken one yet
        self._spared = 0  # calls spares have run
        self._watcher_parked = False
        self._shutdown = False
        self._watcher = self._thread("watcher", self._watch_queue)
        self._watcher.start()

    @property
    def threads(self) -> int:
        """Threads running calls, spares included."""
        with self._work:
            return self._cores + self._spares

    @property
    def spared(self) -> int:
        """Calls spare threads have taken, having waited their patience."""
        with self._work:
            return self._spared

    def submit(self, fn: Callable[P, T], /, *args: P.args, **kwargs: P.kwargs) -> futures.Future[T]:
        future: futures.Future[T] = futures.Future()
        call = _Call(future, fn, args, kwargs)
        with self._work:
            if self._shutdown:
                raise RuntimeError("cannot schedule new calls after shutdown")
            self._queue.append(call)
            if self._idle_cores:
                self._idle_cores -= 1
                self._work.notify()
                return future
            if self._cores >= self.core:
                self._wake_watcher()
                return future
            self._cores += 1
            thread = self._thread(None, self._run_core)
        if not self._begin(thread):
            with self._work:
                self._cores -= 1
                if not self._cores and call in self._queue:
                    # Nothing would ever run the call: say so to the caller.
                    self._queue.remove(call)
                    raise RuntimeError("cannot start a thread to run the call")
        return future

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        """No more calls; those queued still run (or with `cancel_futures`, are cancelled)."""
        with self._work:
            self._shutdown = True
            if cancel_futures:
                while self._queue:
                    self._queue.popleft().future.cancel()
            self._idle_cores = self._idle_spares = 0
            self._work.notify_all()
            self._spare.notify_all()
            self._watch.notify_all()
        if not wait:
            return
        self._watcher.join()  # it ends once nothing is queued: no thread starts after that
        with self._work:
            threads = list(self._threads)
        for thread in threads:
            if thread is not threading.current_thread():
                thread.join()

    def _thread(self, role: str | None, target: Callable[[], None]) -> threading.Thread:
        if role is None:
            self._named += 1
            role = str(self._named)
        # Daemon threads: a call stuck for good does not keep the process from exiting.
        return threading.Thread(target=target, name=f"{self.name}-{role}", daemon=True)

    def _begin(self, thread: threading.Thread) -> bool:
        """Start `thread` (outside the lock); False if the system would not."""
        try:
            thread.start()
        except RuntimeError as exc:
            log.error("cannot start another thread for calls: %s", exc)
            return False
        with self._work:
            self._threads.append(thread)
        return True

    def _wake_watcher(self) -> None:
        if self._watcher_parked:
            self._watcher_parked = False
            self._watch.notify()

    def _run_core(self) -> None:
        while True:
            with self._work:
                while not self._queue and not self._shutdown:
                    self._idle_cores += 1
                    self._work.wait()  # whoever woke this thread took it off the idle count
                if not self._queue:
                    return
                call = self._queue.popleft()
                if self._queue and not self._idle_cores:
                    # Calls are left waiting for this thread and its like: watch them.
                    self._wake_watcher()
            call.run()
            del call  # no reference to a finished call's result while waiting for the next

    def _run_spare(self) -> None:
        while True:
            with self._work:
                while not self._sent and not self._shutdown and not self._aged():
                    self._idle_spares += 1
                    self._spare.wait()  # whoever woke this thread took it off the idle count
                if self._sent:
                    self._sent -= 1
                if not self._queue:
                    if self._shutdown:
                        return
                    continue
                call = self._queue.popleft()
                self._spared += 1
            call.run()
            del call

    def _aged(self) -> bool:
        """Whether a call not yet sent a spare has waited its patience (a spare that comes
        free takes it without waiting to be sent)."""
        queue = self._queue
        return len(queue) > self._sent and time.monotonic() - queue[self._sent].queued >= (
            self.patience
        )

    def _watch_queue(self) -> None:
        lingered = False
        while True:
            with self._work:
                if self._shutdown and not self._queue:
                    return
                if len(self._queue) <= self._sent or self._idle_cores:
                    # Nothing waits that no thread is on its way to. Linger a while before
                    # parking: a queue that fills and drains with every call would otherwise
                    # wake this thread for each.
                    if lingered:
                        self._watcher_parked = True
                        self._watch.wait()
                    else:
                        self._watch.wait(self.patience)
                    lingered = not lingered
                    continue
                lingered = False
                # The first call no spare is on its way to: has it waited its patience?
                left = self._queue[self._sent].queued + self.patience - time.monotonic()
                if left > 0:
                    self._watch.wait(left)
                    continue
                starting = self._send_spares()
                if starting is None:  # every thread there may be is busy: look again later
                    self._watch.wait(self.patience)
                    continue
            for thread in starting:
                if not self._begin(thread):
                    with self._work:
                        self._spares -= 1
                        self._sent -= 1
                    time.sleep(self.patience)  # the system is short of threads: later

    def _send_spares(self) -> list[threading.Thread] | None:
        """Send a spare to each call that has waited its patience and none is on its way to;
        the threads to start for that (None: no spare could be sent)."""
        now = time.monotonic()
        starting: list[threading.Thread] = []
        sent = 0
        for call in itertools.islice(self._queue, self._sent, None):
            if now - call.queued < self.patience:
                break
            if self._idle_spares:
                self._idle_spares -= 1
                self._spare.notify()
            elif self._cores + self._spares < self.limit:
                self._spares += 1
                starting.append(self._thread(None, self._run_spare))
            else:
                break
            self._sent += 1
            sent += 1
        return starting if sent else None
