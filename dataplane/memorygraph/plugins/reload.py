"""Keeping the plugin pipeline in step with `plugins.yaml` without a restart.

A watcher thread checks the file's modification time; a changed file is validated and built
into a new pipeline, which replaces the old one in a single reference swap (a call in flight
finishes with the pipeline it started with). An invalid file keeps the last good pipeline, logs
why, and shows in `memorygraph_plugin_config_valid` and `..._reloads_total{result="invalid"}`.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from pathlib import Path

from prometheus_client import Counter, Gauge

from memorygraph.errors import ConfigError
from memorygraph.periodic import Periodic
from memorygraph.plugins.config import load_plugins_file
from memorygraph.plugins.outbound import DEFAULT_POLICY, WebhookPolicy
from memorygraph.plugins.pipeline import AFTER_QUEUE_BYTES, PluginPipeline
from memorygraph.sizes import ByteBudget

__all__ = ["PluginManager"]

log = logging.getLogger("memorygraph.plugins")

RELOADS = Counter(
    "memorygraph_plugin_config_reloads", "Plugin configuration loads by result", ["result"]
)
VALID = Gauge(
    "memorygraph_plugin_config_valid",
    "1 when the plugins file in place is the one in use, 0 when it was refused",
)


class PluginManager:
    def __init__(
        self,
        path: Path | None,
        count_nodes: Callable[[str, int], int],
        *,
        interval: float = 1.0,
        policy: WebhookPolicy = DEFAULT_POLICY,
        after_queue_bytes: int = AFTER_QUEUE_BYTES,
    ) -> None:
        self.path = path
        self.count_nodes = count_nodes
        self.interval = interval
        self.policy = policy
        # One bound for the after-hooks waiting in every pipeline, the retiring ones included.
        self.after_budget = ByteBudget(after_queue_bytes)
        self._stamp: tuple[int, int] | None = None
        self._checks = Periodic(
            "plugin-reload",
            interval,
            self.check_once,
            log=log,
            failure="checking the plugins file failed; will retry",
        )
        self._watching = False
        self.pipeline = PluginPipeline.empty()
        if path is not None:
            # At start-up a bad file is an error, not something to run without.
            self.pipeline = self._load()
        VALID.set(1)

    def _current_stamp(self) -> tuple[int, int] | None:
        assert self.path is not None
        try:
            stat = self.path.stat()
        except OSError:
            return None
        return (stat.st_mtime_ns, stat.st_size)

    def _load(self) -> PluginPipeline:
        assert self.path is not None
        stamp = self._current_stamp()
        pipeline = PluginPipeline.build(
            load_plugins_file(self.path, self.policy),
            count_nodes=self.count_nodes,
            policy=self.policy,
            after_budget=self.after_budget,
        )
        self._stamp = stamp
        RELOADS.labels("ok").inc()
        return pipeline

    def check_once(self) -> bool:
        """Reload if the file changed; True when a new pipeline went live."""
        if self.path is None or self._current_stamp() == self._stamp:
            return False
        stamp = self._current_stamp()
        try:
            fresh = self._load()
        except ConfigError as exc:
            self._stamp = stamp  # don't retry the same broken file every second
            RELOADS.labels("invalid").inc()
            VALID.set(0)
            log.error("keeping the current plugins: %s", exc)
            return False
        old, self.pipeline = self.pipeline, fresh
        VALID.set(1)
        log.info("plugins reloaded from %s: %d plugins", self.path, len(fresh.plugins))
        # Calls that picked up the old pipeline finish with it; queued after-hooks drain.
        threading.Thread(target=old.close, name="plugin-retire", daemon=True).start()
        return True

    def start(self) -> None:
        if self.path is not None and not self._watching:
            self._watching = True
            self._checks.start()

    def stop(self, timeout: float | None = None) -> None:
        """Stop watching the file; queued after-hooks get at most `timeout` seconds (None:
        as long as they take) to be delivered."""
        self._checks.stop()
        self.pipeline.close(timeout)
