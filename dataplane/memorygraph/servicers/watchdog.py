"""Noticing a wedged server: do the RPC thread pools still run work?

Every `period` seconds a no-op goes to each pool. If one has not run `limit` seconds later,
every worker of that pool is stuck (calls that never finish, callers that never send their
request) and the server can answer nothing but what runs elsewhere: `on_change(False)` is
called, and `on_change(True)` once the no-ops run again. The server turns that into its health
status (gRPC health checks run on a pool of their own and keep answering) and into `/healthz`
and `/readyz`, so liveness probes restart a server that can no longer serve.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence
from concurrent import futures

from memorygraph.periodic import Periodic

__all__ = ["CHECK_SECONDS", "WEDGED_AFTER_SECONDS", "PoolWatchdog"]

log = logging.getLogger("memorygraph.server")

CHECK_SECONDS = 5.0
WEDGED_AFTER_SECONDS = 15.0


class PoolWatchdog:
    def __init__(
        self,
        pools: Sequence[futures.Executor],
        on_change: Callable[[bool], None],
        *,
        period: float | None = None,
        limit: float | None = None,
    ) -> None:
        self.pools = pools
        self.on_change = on_change
        self.period = CHECK_SECONDS if period is None else period
        self.limit = WEDGED_AFTER_SECONDS if limit is None else limit
        self.healthy = True
        self._checks = Periodic("pool-watchdog", self.period, self._check)

    def start(self) -> None:
        self._checks.start()

    def stop(self) -> None:
        self._checks.stop()

    def _check(self) -> None:
        runs = [threading.Event() for _ in self.pools]
        started = time.monotonic()
        try:
            for pool, ran in zip(self.pools, runs, strict=True):
                pool.submit(ran.set)
        except RuntimeError:  # the pools are shutting down with the server: no more checks
            self._checks.stop()
            return
        # Waits past `limit` too, so that recovery is seen as soon as the no-ops run.
        for ran in runs:
            while not ran.wait(min(self.period, self.limit)) and not self._checks.stopping:
                if self.healthy and time.monotonic() - started >= self.limit:
                    self._set(False)
        if all(ran.is_set() for ran in runs) and not self.healthy:
            self._set(True)

    def _set(self, healthy: bool) -> None:
        self.healthy = healthy
        if healthy:
            log.warning("the RPC workers run again; serving")
        else:
            log.error(
                "no RPC worker has been free for %.0fs: the server cannot serve; reporting "
                "unhealthy",
                self.limit,
            )
        self.on_change(healthy)
