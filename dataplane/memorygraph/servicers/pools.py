"""The threads that run unary calls: a few take calls as they come; spares stand in for
those of them that are held.

One process runs one thread of Python at a time. A thread per call in flight (what a plain
`ThreadPoolExecutor` of 64 becomes under 32 concurrent calls) starts every call with a thread
switch, a dear thing on a virtual machine, and has 32 threads queue for the interpreter. With a
few threads and the calls queued for them, a thread that finishes a call takes the next one
without sleeping: GetNode at 32 in flight answered 1.27 times as many calls a second on 4
threads as on 64.

A call can also wait in its thread: for the worker that owns its shard, for a plugin's webhook,
for a caller that never sends its request. A thread that has been on one call for `patience`
seconds counts as held, and for each held thread one spare may take queued calls, up to `limit`
threads in all: the pool keeps `core` threads computing, however many are held. Load alone
starts no spare (the calls are short; they only queue); a spare idle for `spare_idle` seconds
ends. A call that waits a long time (a stream) belongs on a pool of its own.

A watcher thread looks for held threads while calls are queued and every core thread is busy,
at most about once per `patience`; it sleeps otherwise. Threads start outside the pool's lock,
so that starting many spares at once holds up no call.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable
from concurrent import futures
from typing import Any, ParamSpec, TypeVar

__all__ = ["PATIENCE_SECONDS", "SPARE_IDLE_SECONDS", "ElasticPool"]

log = logging.getLogger("memorygraph.server")

# How long a thread is on one call before it counts as held: a read computes for well under a
# millisecond, so this much means it waits for something (or the process stalls).
PATIENCE_SECONDS = 0.02
# How long a spare thread stays without a call before it ends.
SPARE_IDLE_SECONDS = 10.0

P = ParamSpec("P")
T = TypeVar("T")


class _Call:
    __slots__ = ("args", "fn", "future", "kwargs")

    def __init__(
        self, future: futures.Future[Any], fn: Callable[..., Any], args: Any, kwargs: Any
    ) -> None:
        self.future = future
        self.fn = fn
        self.args = args
        self.kwargs = kwargs

    def run(self) -> None:
        if not self.future.set_running_or_notify_cancel():
            return
        try:
            result = self.fn(*self.args, **self.kwargs)
        except BaseException as exc:  # the future carries whatever the call raised
            self.future.set_exception(exc)
        else:
            self.future.set_result(result)


class _Worker:
    """A thread's place in the pool: when its call began (None between calls), and whether
    the watcher has counted it as held."""

    __slots__ = ("held", "started")

    def __init__(self) -> None:
        self.started: float | None = None
        self.held = False


class ElasticPool(futures.Executor):
    """An executor with `core` threads taking work as it comes and up to `limit - core`
    spares, one for each thread held on a call for `patience` seconds (see the module)."""

    def __init__(
        self,
        core: int,
        limit: int,
        *,
        patience: float = PATIENCE_SECONDS,
        spare_idle: float = SPARE_IDLE_SECONDS,
        name: str = "rpc",
    ) -> None:
        if not 1 <= core <= limit:
            raise ValueError(f"need 1 <= core ({core}) <= limit ({limit})")
        self.core = core
        self.limit = limit
        self.patience = patience
        self.spare_idle = spare_idle
        self.name = name
        lock = threading.Lock()
        self._work = threading.Condition(lock)  # core threads wait here for a call
        self._spare = threading.Condition(lock)  # spares wait here for a held thread
        self._watch = threading.Condition(lock)  # the watcher waits here for calls to queue
        self._queue: deque[_Call] = deque()
        self._threads: set[threading.Thread] = set()
        self._workers: list[_Worker] = []
        self._named = 0
        self._cores = 0  # core threads started or about to be
        self._spares = 0  # spare threads started or about to be
        # Core threads waiting that no one has woken yet: one woken is no longer free.
        self._idle_cores = 0
        self._idle_spares = 0  # spares waiting (some perhaps woken already)
        self._starting = 0  # spares started that have not yet looked for a call
        self._held = 0  # threads counted as held, each letting one spare run
        self._running_spares = 0
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
        """Calls spare threads have run."""
        with self._work:
            return self._spared

    @property
    def busy(self) -> int:
        """Threads on a call now."""
        with self._work:
            return sum(1 for w in self._workers if w.started is not None)

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
                if self._running_spares < self._held and self._idle_spares:
                    self._spare.notify()  # a held thread's stand-in is free
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
                self._wake_watcher()  # the threads there are may all be held
        return future

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        """No more calls; those queued still run (or with `cancel_futures`, are cancelled)."""
        with self._work:
            self._shutdown = True
            if cancel_futures:
                while self._queue:
                    self._queue.popleft().future.cancel()
            self._idle_cores = 0
            self._work.notify_all()
            self._spare.notify_all()
            self._watch.notify_all()
        if not wait:
            return
        self._watcher.join()  # it ends once nothing is queued: no spare starts after that
        while True:
            with self._work:
                threads = [t for t in self._threads if t is not threading.current_thread()]
            if all(t.ident is not None for t in threads):
                break
            time.sleep(0.001)  # a thread still starting (a core for a call submitted just before)
        for thread in threads:
            thread.join()

    def _thread(self, role: str | None, target: Callable[[], None]) -> threading.Thread:
        if role is None:
            self._named += 1
            role = str(self._named)
        # Daemon threads: a call stuck for good does not keep the process from exiting.
        return threading.Thread(target=target, name=f"{self.name}-{role}", daemon=True)

    def _begin(self, thread: threading.Thread) -> bool:
        """Start `thread` (outside the lock); False if the system would not."""
        with self._work:
            self._threads.add(thread)
        try:
            thread.start()
        except RuntimeError as exc:
            log.error("cannot start another thread for calls: %s", exc)
            with self._work:
                self._threads.discard(thread)
            return False
        return True

    def _wake_watcher(self) -> None:
        if self._watcher_parked:
            self._watcher_parked = False
            self._watch.notify()

    def _done(self, worker: _Worker) -> None:
        """`worker`'s call is over (under the lock): a held thread lets a spare go."""
        worker.started = None
        if worker.held:
            worker.held = False
            self._held -= 1

    def _run_core(self) -> None:
        worker = _Worker()
        with self._work:
            self._workers.append(worker)
        while True:
            with self._work:
                self._done(worker)
                while not self._queue and not self._shutdown:
                    self._idle_cores += 1
                    self._work.wait()  # whoever woke this thread took it off the idle count
                if not self._queue:
                    self._workers.remove(worker)
                    self._cores -= 1
                    return
                call = self._queue.popleft()
                worker.started = time.monotonic()
                if self._queue and not self._idle_cores:
                    # Calls are left waiting for this thread and its like: watch them.
                    self._wake_watcher()
            call.run()
            del call  # no reference to a finished call's result while waiting for the next

    def _run_spare(self) -> None:
        worker = _Worker()
        with self._work:
            self._workers.append(worker)
            self._starting -= 1
        while True:
            with self._work:
                if worker.started is not None:
                    self._done(worker)
                    self._running_spares -= 1
                if not self._take_as_spare():
                    self._spares -= 1
                    self._workers.remove(worker)
                    self._threads.discard(threading.current_thread())
                    return
                self._running_spares += 1
                call = self._queue.popleft()
                worker.started = time.monotonic()
                self._spared += 1
                if self._queue and self._running_spares < self._held and self._idle_spares:
                    self._spare.notify()  # more calls, and room for another spare
            call.run()
            del call

    def _take_as_spare(self) -> bool:
        """Wait (under the lock) until this spare may take a queued call: True, or False when
        it should end (idle too long, or nothing left after shutdown)."""
        idle_since = time.monotonic()
        while not (self._queue and self._running_spares < self._held):
            if self._shutdown and not self._queue:
                return False
            left = idle_since + self.spare_idle - time.monotonic()
            if left <= 0:
                return False
            self._idle_spares += 1
            # After shutdown, look again now and then: the queue may empty with no one to say.
            self._spare.wait(min(left, self.patience) if self._shutdown else left)
            self._idle_spares -= 1
        return True

    def _watch_queue(self) -> None:
        lingered = False
        while True:
            with self._work:
                if self._shutdown and not self._queue:
                    return
                if not self._queue or self._idle_cores:
                    # Nothing waits for a thread. Linger a while before parking: a queue that
                    # fills and drains with every call would otherwise wake this thread each time.
                    if lingered and not self._shutdown:
                        self._watcher_parked = True
                        self._watch.wait()
                    else:
                        self._watch.wait(self.patience)
                    lingered = not lingered
                    continue
                lingered = False
                wait, starting = self._count_held()
                if not starting:
                    self._watch.wait(wait)
                    continue
            for thread in starting:
                if not self._begin(thread):
                    with self._work:
                        self._spares -= 1
                        self._starting -= 1
                    time.sleep(self.patience)  # the system is short of threads: later

    def _count_held(self) -> tuple[float, list[threading.Thread]]:
        """Count the threads newly held on a call and let a spare go for each, waking idle ones
        or making new ones (under the lock): how long until the next thread may be held, and
        the new spares to start."""
        now = time.monotonic()
        wait = self.patience
        for worker in self._workers:
            if worker.started is None or worker.held:
                continue
            on_call = now - worker.started
            if on_call >= self.patience:
                worker.held = True
                self._held += 1
            else:
                wait = min(wait, self.patience - on_call)
        wanted = min(self._held - self._running_spares, len(self._queue))
        starting: list[threading.Thread] = []
        if wanted <= 0:
            return wait, starting
        woken = min(wanted, self._idle_spares)
        self._spare.notify(woken)
        new = min(wanted - woken - self._starting, self.limit - self._cores - self._spares)
        for _ in range(max(new, 0)):
            self._spares += 1
            self._starting += 1
            starting.append(self._thread(None, self._run_spare))
        # Spares woken take a moment to take their calls: count again once they have (a spare
        # woken twice finds nothing to take and waits again). New ones count as `_starting`.
        return (self.patience if woken else wait), starting
