"""Running the plugins of one hook: order, failure policy, timeouts, metrics.

- Before-hooks run in order (`order`, then name), on a copy of the call. A plugin under `Ignore`
  works on a copy of its own, whose changes are kept only if it succeeds. A refusal ends the
  call with the plugin's status and reason. A plugin that fails or times out refuses the call
  under `Fail` and is skipped under `Ignore`.
- After-hooks never affect the call: failures are counted and logged. Built-ins run inline;
  webhooks are delivered in the background (`plugins.delivery`): a queue bounded in calls and
  bytes (a call that does not fit is dropped and counted), drained for a bounded time on close.
- Timeouts: a webhook's timeout bounds its whole HTTP exchange (connect, send, headers, body);
  built-ins run in-process in microseconds and are not interrupted.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass

from prometheus_client import REGISTRY

from memorygraph.errors import Code
from memorygraph.logs import RateLimitedLog
from memorygraph.metrics.per_thread import CallStats
from memorygraph.plugins import builtin
from memorygraph.plugins.calls import HookCall, PluginRejected
from memorygraph.plugins.delivery import AfterHookQueue, Delivery
from memorygraph.plugins.outbound import DEFAULT_POLICY, WebhookPolicy
from memorygraph.plugins.schema import Hook, PluginsFile, PluginSpec
from memorygraph.plugins.webhook import WebhookPlugin
from memorygraph.sizes import ByteBudget, held_bytes

__all__ = ["LoadedPlugin", "PluginPipeline"]

log = logging.getLogger("memorygraph.plugins")

# Kept per thread and summed on scrape (see memorygraph.metrics.per_thread): prometheus_client
# would take two locks for every plugin run.
PLUGIN_RUNS = CallStats(
    counter=(
        "memorygraph_plugin_executions",
        "Plugin runs by plugin, hook and outcome (ok, rejected, error, timeout, dropped)",
    ),
    histogram=("memorygraph_plugin_duration_seconds", "Time one plugin took on one hook"),
    labels=("plugin", "hook", "outcome"),
    buckets=(0.00005, 0.0001, 0.0005, 0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1, 5),
)
REGISTRY.register(PLUGIN_RUNS)
AFTER_QUEUE_LIMIT = 1000
AFTER_QUEUE_BYTES = 64 << 20
_full_log = RateLimitedLog(log, interval=60.0)


@dataclass
class LoadedPlugin:
    spec: PluginSpec
    impl: builtin.Plugin

    @property
    def name(self) -> str:
        return self.spec.name

    @property
    def inline_after(self) -> bool:
        return bool(getattr(self.impl, "blocking_after", True))


def build_plugin(
    spec: PluginSpec,
    count_nodes: Callable[[str, int], int],
    policy: WebhookPolicy = DEFAULT_POLICY,
) -> builtin.Plugin:
    config = spec.typed_config()
    if spec.type == "validator":
        return builtin.Validator(spec.name, config)
    if spec.type == "redactor":
        return builtin.Redactor(spec.name, config)
    if spec.type == "enricher":
        return builtin.Enricher(spec.name, config)
    if spec.type == "quota":
        return builtin.Quota(spec.name, config, count_nodes)
    return WebhookPlugin(spec.name, config, spec.timeout_seconds, policy)


class PluginPipeline:
    def __init__(
        self, plugins: list[LoadedPlugin], *, after_budget: ByteBudget | None = None
    ) -> None:
        """`after_budget` bounds the bytes of after-hook calls waiting for delivery (shared by
        the pipelines that replace one another on reloads)."""
        self.plugins = plugins
        ordered = sorted(plugins, key=lambda p: (p.spec.order, p.name))
        self._by_hook: dict[Hook, list[LoadedPlugin]] = {}
        for plugin in ordered:
            if plugin.spec.enabled:
                for hook in plugin.spec.effective_hooks:
                    self._by_hook.setdefault(hook, []).append(plugin)
        self._after = AfterHookQueue(
            max_calls=AFTER_QUEUE_LIMIT, budget=after_budget or ByteBudget(AFTER_QUEUE_BYTES)
        )

    @classmethod
    def build(
        cls,
        file: PluginsFile,
        *,
        count_nodes: Callable[[str, int], int],
        policy: WebhookPolicy = DEFAULT_POLICY,
        after_budget: ByteBudget | None = None,
    ) -> PluginPipeline:
        plugins = [
            LoadedPlugin(spec, build_plugin(spec, count_nodes, policy)) for spec in file.plugins
        ]
        return cls(plugins, after_budget=after_budget)

    @classmethod
    def empty(cls) -> PluginPipeline:
        return cls([])

    def wants(self, hook: Hook) -> bool:
        return hook in self._by_hook

    def before(self, call: HookCall) -> HookCall:
        """Run the before-hooks; returns the call as the plugins left it (`call` itself is
        not changed)."""
        plugins = self._by_hook.get(call.hook, ())
        call = call.copy()
        for plugin in plugins:
            # A plugin that fails under Fail ends the call, so it may work on the call itself;
            # under Ignore it works on a copy, kept only if it succeeds.
            trial = call.copy() if plugin.spec.failure_policy == "Ignore" else call
            outcome = "ok"
            started = time.perf_counter()
            try:
                plugin.impl.handle(trial)
                call = trial
            except PluginRejected:
                outcome = "rejected"
                raise
            except Exception as exc:
                outcome = "timeout" if isinstance(exc, TimeoutError) else "error"
                log.warning("plugin %s failed on %s: %s", plugin.name, call.hook, exc)
                if plugin.spec.failure_policy == "Fail":
                    what = "did not answer in time" if outcome == "timeout" else "failed"
                    raise PluginRejected(
                        plugin.name,
                        f"{what} and its failure policy is Fail",
                        Code.UNAVAILABLE,
                    ) from None
            finally:
                PLUGIN_RUNS.timed((plugin.name, call.hook, outcome), time.perf_counter() - started)
        return call

    def after(self, call: HookCall) -> None:
        """Run the after-hooks; never raises."""
        for plugin in self._by_hook.get(call.hook, ()):
            if plugin.inline_after:
                _run_after(plugin, call)
            else:
                self._submit(plugin, call)

    def _submit(self, plugin: LoadedPlugin, call: HookCall) -> None:
        delivery = Delivery(
            lambda: _run_after(plugin, call), held_bytes(call), (plugin.name, call.hook)
        )
        if not self._after.submit(delivery):
            PLUGIN_RUNS.counted((plugin.name, call.hook, "dropped"))
            queue = self._after
            _full_log.info(
                "after-hook queue full (%d calls or %d bytes) or closed: deliveries are "
                "dropped and counted as outcome=dropped",
                queue.max_calls,
                queue.budget.limit,
            )

    def close(self, timeout: float | None = None) -> None:
        """Deliver the queued after-hooks, waiting at most `timeout` seconds (None: until
        done); those still queued then are dropped and counted. Then release connections."""
        dropped = self._after.close(timeout)
        for delivery in dropped:
            PLUGIN_RUNS.counted((*delivery.labels, "dropped"))
        if dropped:
            log.warning(
                "dropped %d after-hook deliveries still queued after %gs (%d under way left "
                "to finish in the background)",
                len(dropped),
                timeout,
                self._after.running,
            )
        for plugin in self.plugins:
            close = getattr(plugin.impl, "close", None)
            if close is not None:
                close()


def _run_after(plugin: LoadedPlugin, call: HookCall) -> None:
    outcome = "ok"
    started = time.perf_counter()
    try:
        plugin.impl.handle(call.copy())
    except Exception as exc:
        outcome = "timeout" if isinstance(exc, TimeoutError) else "error"
        log.warning("plugin %s failed on %s (the change stands): %s", plugin.name, call.hook, exc)
    finally:
        PLUGIN_RUNS.timed((plugin.name, call.hook, outcome), time.perf_counter() - started)
