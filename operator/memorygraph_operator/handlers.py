"""kopf handlers: thin adapters from watch events to :mod:`.reconcile`, errors to kopf's.

Handlers hold no logic of their own: they find the graph to reconcile, serialise reconciles of
the same graph, record metrics, and translate the operator's errors into kopf's retry policy
(this is the one place that happens).
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import logging
import time
from collections.abc import Mapping
from typing import Any

import kopf

from memorygraph_operator.api.base import GROUP, VERSION
from memorygraph_operator.api.conditions import ConditionType, EventReason
from memorygraph_operator.errors import Conflict, Invalid, InvalidSpec, KubeError, Unavailable
from memorygraph_operator.kube import FIELD_MANAGER, Kube, resource_for
from memorygraph_operator.metrics import (
    MOVE_FENCE,
    MOVES_STUCK,
    RECONCILE_DURATION,
    RECONCILE_ERRORS,
    RECONCILE_TOTAL,
    SHARD_MOVES,
    ReadinessTracker,
)
from memorygraph_operator.peers import Peers
from memorygraph_operator.reconcile.memorygraph import GRAPH, Outcome, reconcile_graph
from memorygraph_operator.reconcile.observed import Observed, observe
from memorygraph_operator.reconcile.plugins import reconcile_plugin
from memorygraph_operator.reconcile.reads import ClusterReads
from memorygraph_operator.reconcile.usage import record_plugin_users
from memorygraph_operator.render.context import RenderEnv
from memorygraph_operator.render.metadata import LABEL_MANAGED_BY, MANAGED_BY

__all__ = [
    "OperatorMemo",
    "on_graph",
    "on_plugin",
    "reconcile_graph_by_name",
    "resync_all",
    "stop_later",
]

# Every kind of child, watched: a change reconciles its graph, and reconciles read children
# from these watches (kopf indices) instead of the API.
_CHILD_KINDS = (
    ("apps", "v1", "statefulsets", "StatefulSet"),
    ("", "v1", "services", "Service"),
    ("", "v1", "configmaps", "ConfigMap"),
    ("batch", "v1", "cronjobs", "CronJob"),
    ("policy", "v1", "poddisruptionbudgets", "PodDisruptionBudget"),
    ("autoscaling", "v2", "horizontalpodautoscalers", "HorizontalPodAutoscaler"),
    ("networking.k8s.io", "v1", "networkpolicies", "NetworkPolicy"),
    ("monitoring.coreos.com", "v1", "servicemonitors", "ServiceMonitor"),
)
# Children whose status the graph's status reports: a change of theirs always reconciles.
_STATUS_KINDS = frozenset({"StatefulSet", "CronJob"})
# How long an answer of API discovery (is the ServiceMonitor CRD served?) is kept.
DISCOVERY_SECONDS = 60.0
# A reconcile asked for later (a rebalance going on) that failed is asked for again after this.
RETRY_AFTER_FAILURE = 15.0


class OperatorMemo(kopf.Memo):
    """What every handler shares: the API client, render environment, locks and metrics."""

    kube: Kube
    reads: ClusterReads
    env: RenderEnv
    locks: dict[tuple[str, str], asyncio.Lock]
    # Graphs with a reconcile waiting to start, which a new trigger can join.
    queued: dict[tuple[str, str], object]
    # At most this many graphs reconcile at once; the others wait their turn, first come first.
    slots: asyncio.Semaphore
    readiness: ReadinessTracker
    namespaces: tuple[str, ...]  # empty: the whole cluster
    resync_seconds: float
    resync_task: asyncio.Task[None]
    # The graphs' pods on their peer port (None: shards are not moved between pods).
    peers: Peers | None
    # Reconciles asked for later (a rebalance going on): when, and the task waiting for it.
    again: dict[tuple[str, str], tuple[float, asyncio.Task[None]]]
    later: set[asyncio.Task[None]]  # every such task, waiting or running
    stuck: set[tuple[str, str]]  # graphs whose move under way is stuck


def _ns(namespace: str | None) -> str:
    """Both kinds are namespaced: kopf passes None only for cluster-scoped objects."""
    if namespace is None:
        raise kopf.PermanentError("MemoryGraph resources are namespaced")
    return namespace


def _now() -> datetime.datetime:
    return datetime.datetime.now(datetime.UTC)


def _ready_of(status: Mapping[str, Any]) -> str:
    for c in status.get("conditions") or []:
        if c.get("type") == ConditionType.READY:
            return str(c.get("status"))
    return "Unknown"


def _translate(kind: str, exc: Exception) -> Exception:
    """The kopf error for one of ours: permanent for invalid specs, temporary otherwise."""
    RECONCILE_ERRORS.labels(kind=kind, error=type(exc).__name__).inc()
    if isinstance(exc, InvalidSpec):
        RECONCILE_TOTAL.labels(kind=kind, result="invalid").inc()
        return kopf.PermanentError(f"invalid spec: {exc}")
    RECONCILE_TOTAL.labels(kind=kind, result="error").inc()
    if isinstance(exc, (Unavailable, Conflict)):
        return kopf.TemporaryError(str(exc), delay=10)
    if isinstance(exc, Invalid):
        # The API server rejected a rendered child: retrying soon would only repeat it.
        return kopf.TemporaryError(str(exc), delay=120)
    return kopf.TemporaryError(str(exc), delay=30)


async def reconcile_graph_by_name(
    memo: OperatorMemo,
    namespace: str,
    name: str,
    logger: logging.Logger | logging.LoggerAdapter[Any],
    *,
    join: bool = False,
) -> dict[str, Any] | None:
    """Reconcile one graph with the latest state read inside its lock; its status, or None.

    Reading the object again inside the lock means a reconcile queued behind another one
    starts from the status the first one wrote, not from a stale event body. With ``join``,
    a reconcile of the graph that is waiting to start serves this call too (it reads the
    state after whatever triggered this call): a burst of child events costs one reconcile.
    """
    key = (namespace, name)
    token = object()
    if join:
        if key in memo.queued:
            return None
        memo.queued[key] = token
    lock = memo.locks.setdefault(key, asyncio.Lock())
    try:
        async with lock, memo.slots:
            if memo.queued.get(key) is token:
                del memo.queued[key]
            return await _reconcile_locked(memo, namespace, name, logger)
    finally:
        if memo.queued.get(key) is token:
            del memo.queued[key]


async def _reconcile_locked(
    memo: OperatorMemo,
    namespace: str,
    name: str,
    logger: logging.Logger | logging.LoggerAdapter[Any],
) -> dict[str, Any] | None:
    started = time.monotonic()
    try:
        body = await memo.kube.get(GRAPH, namespace, name)
        if body is None or (body.get("metadata") or {}).get("deletionTimestamp"):
            memo.readiness.set("MemoryGraph", namespace, name, None)
            return None
        outcome = await reconcile_graph(memo.reads, body, memo.env, _now(), memo.peers)
    except (InvalidSpec, KubeError) as exc:
        if isinstance(exc, InvalidSpec):
            memo.readiness.set("MemoryGraph", namespace, name, "False")
        raise _translate("MemoryGraph", exc) from exc
    finally:
        RECONCILE_DURATION.labels(kind="MemoryGraph").observe(time.monotonic() - started)
    result = "paused" if outcome.paused else "success"
    RECONCILE_TOTAL.labels(kind="MemoryGraph", result=result).inc()
    memo.readiness.set("MemoryGraph", namespace, name, _ready_of(outcome.status))
    _record_moves(memo, (namespace, name), outcome, logger)
    if outcome.applied or outcome.deleted:
        logger.debug("applied %s, deleted %s", outcome.applied, outcome.deleted)
    return outcome.status


def _record_moves(
    memo: OperatorMemo,
    key: tuple[str, str],
    outcome: Outcome,
    logger: logging.Logger | logging.LoggerAdapter[Any],
) -> None:
    """Count the reconcile's shard moves, and ask for the next reconcile a rebalance needs."""
    for taken in outcome.moved:
        SHARD_MOVES.labels(result="done").inc()
        MOVE_FENCE.observe(taken.fenced_seconds)
    if outcome.move_failures:
        SHARD_MOVES.labels(result="failed").inc(outcome.move_failures)
    if outcome.move_stuck:
        memo.stuck.add(key)
    else:
        memo.stuck.discard(key)
    MOVES_STUCK.set(len(memo.stuck))
    if outcome.again_in is not None:
        _again(memo, key, outcome.again_in, logger)


def _again(
    memo: OperatorMemo,
    key: tuple[str, str],
    delay: float,
    logger: logging.Logger | logging.LoggerAdapter[Any],
) -> None:
    """Reconcile the graph ``key`` again in ``delay`` seconds (one waiting reconcile per
    graph: an earlier one asked for stays)."""
    due = time.monotonic() + delay
    waiting = memo.again.get(key)
    if waiting is not None and not waiting[1].done():
        if waiting[0] <= due:
            return
        waiting[1].cancel()

    async def later() -> None:
        await asyncio.sleep(delay)
        if memo.again.get(key, (0.0, None))[1] is asyncio.current_task():
            del memo.again[key]
        try:
            await reconcile_graph_by_name(memo, *key, logger, join=True)
        except kopf.PermanentError as exc:  # an invalid spec: its next change reconciles it
            logger.warning("reconcile of %s/%s during its rebalance failed: %s", *key, exc)
        except Exception as exc:  # the rebalance goes on when this is retried
            logger.warning(
                "reconcile of %s/%s during its rebalance failed, again in %.0f s: %s",
                *key,
                RETRY_AFTER_FAILURE,
                exc,
            )
            _again(memo, key, RETRY_AFTER_FAILURE, logger)

    task = asyncio.create_task(later())
    memo.again[key] = (due, task)
    memo.later.add(task)
    task.add_done_callback(memo.later.discard)


async def stop_later(memo: OperatorMemo) -> None:
    """Cancel every reconcile asked for later, waiting or running."""
    for task in list(memo.later):
        await _cancel(task)
    memo.again.clear()


async def _cancel(task: asyncio.Task[None]) -> None:
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task


@kopf.on.cleanup()
async def on_cleanup(memo: OperatorMemo, **_: Any) -> None:
    """Stop the resync and the reconciles asked for later, and close the API client's
    connections when the operator stops."""
    task = getattr(memo, "resync_task", None)
    if task is not None:
        await _cancel(task)
    await stop_later(memo)
    await memo.kube.close()


@kopf.on.resume(GROUP, VERSION, "memorygraphs")
@kopf.on.create(GROUP, VERSION, "memorygraphs")
@kopf.on.update(GROUP, VERSION, "memorygraphs")
async def on_graph(
    name: str, namespace: str | None, memo: OperatorMemo, logger: kopf.Logger, **_: Any
) -> None:
    """A graph appeared, changed (spec, labels, annotations) or the operator restarted."""
    await reconcile_graph_by_name(memo, _ns(namespace), name, logger)


async def _forget_missing_children(memo: OperatorMemo, logger: kopf.Logger) -> None:
    """Check the watched children against a listing of their names (see
    :meth:`ClusterReads.forget_missing`): one request per kind and namespace, metadata only."""
    scopes: tuple[str | None, ...] = memo.namespaces or (None,)
    selector = f"{LABEL_MANAGED_BY}={MANAGED_BY}"
    watched = set(memo.reads.watched_kinds())
    for group, version, _, kind in _CHILD_KINDS:
        if kind not in watched:
            continue
        rt = resource_for(f"{group}/{version}" if group else version, kind)
        before = memo.reads.entries(kind)
        listed: set[tuple[str, str, str]] = set()
        try:
            for scope in scopes:
                listed |= await memo.kube.list_names(rt, scope, selector)
        except KubeError as exc:
            # The graphs are reconciled all the same; this kind is checked next time.
            logger.warning("could not list %s objects to check the watch: %s", kind, exc)
            continue
        missing = memo.reads.forget_missing(kind, before, listed)
        if missing:
            logger.info("%d %s objects the watch shows no longer exist", missing, kind)


async def resync_all(memo: OperatorMemo, logger: kopf.Logger) -> None:
    """Reconcile every graph once: repairs drift in children no watch reports."""
    await _forget_missing_children(memo, logger)
    scopes: tuple[str | None, ...] = memo.namespaces or (None,)
    for scope in scopes:
        for graph in await memo.kube.list(GRAPH, scope):
            meta = graph["metadata"]
            try:
                await reconcile_graph_by_name(
                    memo, meta["namespace"], meta["name"], logger, join=True
                )
            except (kopf.PermanentError, kopf.TemporaryError) as exc:
                logger.warning("resync of %s/%s failed: %s", meta["namespace"], meta["name"], exc)


async def _resync_forever(memo: OperatorMemo, interval: float, logger: kopf.Logger) -> None:
    while True:
        await asyncio.sleep(interval)
        try:
            await resync_all(memo, logger)
        except KubeError as exc:
            logger.warning("periodic resync failed, retrying next period: %s", exc)


def _index_id(kind: str) -> str:
    return f"watched_{kind.lower()}s"


def _index_child(**kwargs: Any) -> dict[tuple[str, str], Observed]:
    """A child as the watch reports it, trimmed (see :mod:`.reconcile.observed`)."""
    body, name = kwargs["body"], kwargs["name"]
    return {(_ns(kwargs["namespace"]), name): observe(body, FIELD_MANAGER)}


for _group, _version, _plural, _kind in _CHILD_KINDS:
    kopf.index(
        _group, _version, _plural, id=_index_id(_kind), labels={LABEL_MANAGED_BY: MANAGED_BY}
    )(_index_child)


@kopf.index(GROUP, VERSION, "plugins", id="watched_plugins")
def _index_plugin(body: kopf.Body, namespace: str | None, **_: Any) -> dict[str, dict[str, Any]]:
    """A Plugin as the watch reports it, without its managed fields."""
    plugin = dict(body)
    plugin["metadata"] = {k: v for k, v in body["metadata"].items() if k != "managedFields"}
    return {_ns(namespace): plugin}


@kopf.on.startup()
async def on_startup(memo: OperatorMemo, logger: kopf.Logger, **kwargs: Any) -> None:
    """Read children and Plugins from the watches, and start the periodic resync, which
    repairs drift in children no watch reports.

    The resync is a plain background task rather than a kopf timer: timers make kopf put a
    finalizer on every graph, and then deleting a graph would hang whenever the operator is
    not running. kopf fills the indices before any resource handler runs.
    """
    children = {
        kind: kwargs[_index_id(kind)] for *_, kind in _CHILD_KINDS if _index_id(kind) in kwargs
    }
    if children and "watched_plugins" in kwargs:
        memo.reads.use_watches(children, kwargs["watched_plugins"], DISCOVERY_SECONDS)
    memo.resync_task = asyncio.create_task(_resync_forever(memo, memo.resync_seconds, logger))


@kopf.on.event(GROUP, VERSION, "memorygraphs")
async def on_graph_event(
    type: str,
    name: str,
    namespace: str | None,
    memo: OperatorMemo,
    logger: kopf.Logger,
    **_: Any,
) -> None:
    """A graph is gone: drop it from its plugins' users and from the readiness metric.

    Its children go with it through owner references.
    """
    if type != "DELETED":
        return
    ns = _ns(namespace)
    memo.readiness.set("MemoryGraph", ns, name, None)
    memo.locks.pop((ns, name), None)
    memo.stuck.discard((ns, name))
    MOVES_STUCK.set(len(memo.stuck))
    waiting = memo.again.pop((ns, name), None)
    if waiting is not None:
        waiting[1].cancel()
    memo.reads.forget(ns, name)
    try:
        plugins = await memo.reads.plugins(ns)
        await record_plugin_users(memo.kube, ns, name, plugins, selected=set())
    except KubeError as exc:
        logger.warning("could not update the plugins graph %s used: %s", name, exc)


def _owner_graph(body: Mapping[str, Any]) -> str | None:
    for ref in (body.get("metadata") or {}).get("ownerReferences") or []:
        if ref.get("kind") == "MemoryGraph" and ref.get("apiVersion", "").startswith(GROUP + "/"):
            return str(ref.get("name"))
    return None


async def on_child(
    type: str | None,
    body: kopf.Body,
    namespace: str | None,
    memo: OperatorMemo,
    logger: kopf.Logger,
    **_: Any,
) -> None:
    """A child changed (status, drift, deletion): reconcile its graph.

    Skipped: the initial listing (``type`` None; every graph is reconciled on resume anyway,
    and reacting to it would reconcile each graph once per child at every operator start),
    and the echo of the operator's own apply of a child whose status the graph does not
    report. Events arriving while a reconcile of the graph waits to start join it.
    """
    graph = _owner_graph(body)
    if graph is None or type is None:
        return
    ns = _ns(namespace)
    kind = str(body.get("kind"))
    echo = type != "DELETED" and kind not in _STATUS_KINDS
    if echo and memo.reads.as_last_applied(ns, graph, kind, observe(body, FIELD_MANAGER)):
        return
    try:
        await reconcile_graph_by_name(memo, ns, graph, logger, join=True)
    except (kopf.PermanentError, kopf.TemporaryError) as exc:
        # Event handlers are not retried; the graph's own handler and the resync are.
        logger.warning("reconcile of %s after a child change failed: %s", graph, exc)


for _group, _version, _plural, _ in _CHILD_KINDS:
    kopf.on.event(_group, _version, _plural, labels={LABEL_MANAGED_BY: MANAGED_BY})(on_child)


async def _reconcile_graphs(
    memo: OperatorMemo, namespace: str, names: list[str], logger: kopf.Logger
) -> None:
    for graph in names:
        try:
            await reconcile_graph_by_name(memo, namespace, graph, logger)
        except (kopf.PermanentError, kopf.TemporaryError) as exc:
            logger.warning("reconcile of graph %s failed: %s", graph, exc)


@kopf.on.resume(GROUP, VERSION, "plugins")
@kopf.on.create(GROUP, VERSION, "plugins")
@kopf.on.update(GROUP, VERSION, "plugins")
async def on_plugin(
    body: kopf.Body, namespace: str | None, memo: OperatorMemo, logger: kopf.Logger, **_: Any
) -> None:
    """A plugin changed: record its status, then re-render every graph it affects."""
    started = time.monotonic()
    try:
        status, affected = await reconcile_plugin(memo.kube, body, _now())
    except KubeError as exc:
        raise _translate("Plugin", exc) from exc
    finally:
        RECONCILE_DURATION.labels(kind="Plugin").observe(time.monotonic() - started)
    RECONCILE_TOTAL.labels(kind="Plugin", result="success").inc()
    memo.readiness.set("Plugin", _ns(namespace), body["metadata"]["name"], _ready_of(status))
    await _reconcile_graphs(memo, _ns(namespace), affected, logger)


@kopf.on.event(GROUP, VERSION, "plugins")
async def on_plugin_event(
    type: str,
    body: kopf.Body,
    name: str,
    namespace: str | None,
    memo: OperatorMemo,
    logger: kopf.Logger,
    **_: Any,
) -> None:
    """A plugin was deleted: warn every graph that used it and re-render them."""
    if type != "DELETED":
        return
    ns = _ns(namespace)
    memo.readiness.set("Plugin", ns, name, None)
    used_by = list((body.get("status") or {}).get("usedBy") or [])
    for graph in used_by:
        graph_body = await memo.kube.get(GRAPH, ns, graph)
        if graph_body is not None:
            await memo.kube.post_event(
                graph_body,
                "Warning",
                EventReason.PLUGIN_DELETED,
                f"plugin {name} was deleted while this graph used it",
                _now(),
            )
    await _reconcile_graphs(memo, ns, used_by, logger)
