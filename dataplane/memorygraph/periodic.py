"""`Periodic`: one step, run every so many seconds in a daemon thread until stopped.

The background work of the server that runs on a timer (event-log retention, the plugins-file
watcher, the RPC pool watchdog) starts, waits and stops the same way. This module imports
nothing but the standard library, so any layer may use it.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

__all__ = ["Periodic"]


class Periodic:
    """Runs `step()` every `interval` seconds in a daemon thread named `name`, the first time
    one interval after `start()`, until `stop()`.

    A step that raises is logged on `log` with the message `failure`, and the next one runs
    on time; without a `log` the exception ends the thread, as it would any thread."""

    def __init__(
        self,
        name: str,
        interval: float,
        step: Callable[[], object],
        *,
        log: logging.Logger | None = None,
        failure: str = "",
    ) -> None:
        self.interval = interval
        self.step = step
        self.log = log
        self.failure = failure
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)

    @property
    def stopping(self) -> bool:
        """Whether `stop` was called: a long step may end early."""
        return self._stop.is_set()

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            try:
                self.step()
            except Exception:
                if self.log is None:
                    raise
                self.log.exception(self.failure)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        """No step runs after this; waits for one under way (unless called by the step
        itself, which then is the last)."""
        self._stop.set()
        if self._thread.is_alive() and self._thread is not threading.current_thread():
            self._thread.join()
