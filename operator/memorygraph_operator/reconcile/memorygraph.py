"""One idempotent reconcile of a MemoryGraph: render → apply → prune → status.

Calling :func:`reconcile_graph` twice in a row changes nothing the second time: every child is
server-side applied (a no-op when unchanged), absent children are deleted only if this graph
controls them, and the status patch carries the same values and transition times.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import contextlib
import dataclasses
import datetime
import secrets
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from memorygraph_operator.api.base import API_VERSION, quantity_value
from memorygraph_operator.api.conditions import ConditionType, EventReason, Reason
from memorygraph_operator.errors import Conflict, Invalid, InvalidSpec
from memorygraph_operator.kube import FIELD_MANAGER, Kube, ResourceType, resource_for
from memorygraph_operator.peers import Peers, Taken
from memorygraph_operator.reconcile.inputs import is_paused, parse_graph, select_plugins
from memorygraph_operator.reconcile.moves import Rebalance, needs_pods, rebalance
from memorygraph_operator.reconcile.observed import (
    Observed,
    applied_hash,
    controlled_by,
    observe,
    with_applied_hash,
)
from memorygraph_operator.reconcile.reads import ClusterReads
from memorygraph_operator.reconcile.status import (
    ConditionSpec,
    Observation,
    graph_status,
    invalid_spec_status,
    paused_status,
    transition_events,
)
from memorygraph_operator.reconcile.usage import PLUGIN, record_plugin_users
from memorygraph_operator.render import (
    Child,
    GraphInputs,
    MapPlan,
    Names,
    PendingMove,
    RenderEnv,
    ShardMap,
    config_hash,
    needs_generated_auth_secret,
    parse_move,
    parse_shard_map,
    plan_shard_map,
    render_auth_secret,
    render_children,
    render_peer_secret,
    render_shard_map,
)
from memorygraph_operator.render.metadata import selector_labels
from memorygraph_operator.render.secrets import PEER_KEY
from memorygraph_operator.render.shardmap import MOVE_KEY, SHARD_MAP_KEY
from memorygraph_operator.render.statefulset import (
    ANNOTATION_SHARD_MAP,
    DATA_VOLUME,
    statefulset_replicas,
)

__all__ = [
    "GRAPH",
    "PLUGIN",
    "Outcome",
    "controlled_by",
    "new_api_key",
    "reconcile_graph",
    "record_invalid_spec",
    "scaled_by_an_earlier_autoscaler",
]

GRAPH = resource_for(API_VERSION, "MemoryGraph")
SECRET = resource_for("v1", "Secret")
CONFIGMAP = resource_for("v1", "ConfigMap")
STATEFULSET = resource_for("apps/v1", "StatefulSet")
PVC = resource_for("v1", "PersistentVolumeClaim")
_DELETE_WAIT_STEPS = 60
_DELETE_WAIT_SECONDS = 0.5


@dataclass(frozen=True)
class Outcome:
    """What a reconcile did, for metrics and tests."""

    status: dict[str, Any]
    applied: tuple[str, ...] = ()
    deleted: tuple[str, ...] = ()
    paused: bool = False
    # Shard moves: those finished, attempts that failed, whether the move under way is stuck,
    # and when to reconcile again to go on (None: no need).
    moved: tuple[Taken, ...] = ()
    move_failures: int = 0
    move_stuck: bool = False
    again_in: float | None = None


def _stamp(now: datetime.datetime) -> str:
    return now.astimezone(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


# Who set a StatefulSet's replicas when an HPA of an earlier version scaled it: that version's
# hand-over manager (its apply, before the HPA's first change), then the HPA controller (an
# update of the StatefulSet's scale subresource).
EARLIER_SCALERS = frozenset({f"{FIELD_MANAGER}-handover", "kube-controller-manager"})


def scaled_by_an_earlier_autoscaler(existing: Observed | None) -> bool:
    """Whether the StatefulSet's ``spec.replicas`` is still the choice of an earlier
    operator's autoscaling, which let an HPA scale the StatefulSet itself (the HPA now scales
    the graph): set by one of EARLIER_SCALERS, and not yet applied by this operator. Such a
    StatefulSet is adopted at its size once (see ``_Run._adopt_replicas``); one scaled by
    anyone else (``kubectl scale sts``) is set back to the graph's replicas."""
    if existing is None:
        return False
    earlier = bool(existing.replicas_managers & EARLIER_SCALERS)
    return earlier and not existing.replicas_applied


def _grows(want: Mapping[str, Any], have: Mapping[str, Any]) -> bool:
    """Whether the StatefulSet ``want`` asks for larger volumes than ``have`` has."""
    want_size, _ = _claim_size(want)
    have_size, _ = _claim_size(have)
    return bool(want_size and have_size and quantity_value(want_size) > quantity_value(have_size))


def _claim_size(sts: Mapping[str, Any] | None) -> tuple[str | None, str | None]:
    claims = ((sts or {}).get("spec") or {}).get("volumeClaimTemplates") or [{}]
    spec = claims[0].get("spec") or {}
    return (spec.get("resources") or {}).get("requests", {}).get("storage"), spec.get(
        "storageClassName"
    )


class _Run:
    """State of one reconcile (the graph, the client, and what happened)."""

    def __init__(
        self, reads: ClusterReads, body: Mapping[str, Any], now: datetime.datetime
    ) -> None:
        self.reads = reads
        self.kube = reads.kube
        self.body = body
        self.now = now
        self.problems: list[tuple[Reason, str]] = []
        self.applied: list[str] = []
        self.deleted: list[str] = []

    async def event(self, type_: str, reason: str, message: str) -> None:
        await self.kube.post_event(self.body, type_, reason, message, self.now)

    async def get(self, child: Child, g: GraphInputs) -> Observed | None:
        return await self.reads.child(
            resource_for(child.api_version, child.kind), g.namespace, child.name
        )

    def _unchanged(self, child: Child, g: GraphInputs, existing: Observed, digest: str) -> bool:
        """Whether applying ``child`` would change nothing (see :mod:`.observed`)."""
        last = self.reads.last_applied(g.namespace, g.name, child.kind, child.name)
        return existing.as_applied(digest, None if last is None else last[1])

    async def apply(
        self, child: Child, g: GraphInputs, existing: Observed | None
    ) -> dict[str, Any] | None:
        assert child.body is not None
        if existing is not None and not existing.controlled_by(g.uid):
            self.problems.append(
                (
                    Reason.CHILD_CONFLICT,
                    f"{child.kind} {child.name} exists and is not owned by this graph",
                )
            )
            return None
        try:
            if child.kind == "StatefulSet":
                await self._prepare_statefulset(child, g, existing)
            digest = applied_hash(child.body)
            if existing is not None and self._unchanged(child, g, existing, digest):
                return existing.body
            answer = await self.kube.apply(with_applied_hash(child.body, digest))
            applied = observe(answer, FIELD_MANAGER)
        except Invalid as exc:
            # The API server refused this child (an admission policy, a quota, a field it
            # forbids changing): report it and still reconcile the others.
            self.problems.append((Reason.APPLY_FAILED, str(exc)))
            return existing.body if existing is not None else None
        self.reads.record_applied(g.namespace, g.name, child.kind, child.name, applied)
        self.applied.append(f"{child.kind}/{child.name}")
        return applied.body

    async def _adopt_replicas(self, child: Child, g: GraphInputs, existing: Observed) -> None:
        """Keep the pods an HPA of an older operator scaled the StatefulSet to: the graph's
        ``spec.replicas`` takes that count (within the autoscaling bounds), as the HPA, which
        now scales the graph, would have written it."""
        a = g.spec.autoscaling
        assert a is not None and child.body is not None
        current = int((existing.body.get("spec") or {}).get("replicas", g.spec.replicas))
        current = min(max(current, a.min_replicas), a.max_replicas)
        if current != g.spec.replicas:
            await self.kube.merge_patch(
                GRAPH, g.namespace, g.name, {"spec": {"replicas": current}}, subresource="scale"
            )
            await self.event(
                "Normal",
                EventReason.REPLICAS_ADOPTED,
                f"spec.replicas set to the {current} pods the StatefulSet was scaled to",
            )
        child.body["spec"]["replicas"] = current

    async def _prepare_statefulset(
        self, child: Child, g: GraphInputs, existing: Observed | None
    ) -> None:
        assert child.body is not None
        if existing is None:
            return
        if g.spec.autoscaled and scaled_by_an_earlier_autoscaler(existing):
            await self._adopt_replicas(child, g, existing)
        # By value: the API server hands back `1Gi` for a spec saying `1024Mi`, and recreating
        # the StatefulSet over that would happen on every reconcile. A smaller size is left to
        # the apply, which the API server refuses (claim templates are immutable).
        if not _grows(child.body, existing.body):
            return
        # Recreating is drastic: confirm with the API server, not a watch that may lag behind
        # a recreation that already happened.
        sts = resource_for(child.api_version, child.kind)
        current = await self.kube.get(sts, g.namespace, child.name)
        if current is not None and _grows(child.body, current):
            want_size, _ = _claim_size(child.body)
            assert want_size is not None
            uid = str(current["metadata"]["uid"])
            await self._expand_storage(child, g, want_size, uid)

    async def _expand_storage(self, child: Child, g: GraphInputs, size: str, uid: str) -> None:
        """Grow every volume, then recreate the StatefulSet around the running pods.

        Volume claim templates are immutable: the StatefulSet is deleted with orphaning
        propagation (pods and volumes keep running) and applied again with the new size.
        """
        selector = ",".join(f"{k}={v}" for k, v in selector_labels(g).items())
        for pvc in await self.kube.list(PVC, g.namespace, selector):
            name = pvc["metadata"]["name"]
            await self.kube.merge_patch(
                PVC, g.namespace, name, {"spec": {"resources": {"requests": {"storage": size}}}}
            )
        sts = resource_for("apps/v1", "StatefulSet")
        await self.kube.delete(sts, g.namespace, child.name, propagation="Orphan", uid=uid)
        # Orphaning deletion finishes asynchronously (garbage collector): applying before the
        # old object is gone would patch the terminating one and be refused (immutable field).
        for _ in range(_DELETE_WAIT_STEPS):
            if await self.kube.get(sts, g.namespace, child.name) is None:
                break
            await asyncio.sleep(_DELETE_WAIT_SECONDS)
        await self.event(
            "Normal", EventReason.STORAGE_EXPANDED, f"volumes of {g.name} grow to {size}"
        )

    async def prune(self, child: Child, g: GraphInputs, existing: Observed | None) -> None:
        if existing is None or not existing.controlled_by(g.uid):
            return
        rt: ResourceType = resource_for(child.api_version, child.kind)
        uid = existing.body["metadata"].get("uid")
        try:
            deleted = await self.kube.delete(rt, g.namespace, child.name, uid=uid)
        except Conflict:
            return  # not the object the watch showed: someone made another since
        if deleted:
            self.deleted.append(f"{child.kind}/{child.name}")


def new_api_key() -> str:
    """A new random API key (256 bits). It starts with `mgk_`: secret scanners can tell it, and
    it never begins with `-`, which a command line (`memorygraph --api-key KEY`) would take for
    an option."""
    return "mgk_" + secrets.token_urlsafe(32)


async def _ensure_auth_secret(run: _Run, g: GraphInputs) -> None:
    """Create the generated API-key Secret once; never update nor delete it.

    A Secret that is no longer used stays until the graph goes (owner reference), so switching
    authentication off and on again brings the same keys back, and the operator needs no right
    to delete Secrets.
    """
    name = Names(g.name).auth_secret
    if not needs_generated_auth_secret(g):
        # Not used now: read again once it is (it may be deleted meanwhile).
        run.reads.secret_unused(g.namespace, name)
        return
    await _create_secret_once(
        run,
        g,
        name,
        lambda: render_auth_secret(g, new_api_key(), new_api_key()),
        (EventReason.API_KEYS_GENERATED, f"API keys generated in Secret {name}"),
    )


async def _create_secret_once(
    run: _Run,
    g: GraphInputs,
    name: str,
    render: Callable[[], dict[str, Any] | None],
    event: tuple[EventReason, str],
) -> None:
    """Create the Secret ``render()`` makes (its keys drawn at random) unless it exists; one
    that exists and is not the graph's is a conflict. One seen lately is not read again."""
    if run.reads.secret_known(g.namespace, name, g.uid):
        return
    existing = await run.kube.get(SECRET, g.namespace, name)
    if existing is None:
        body = render()
        assert body is not None
        # Created concurrently: keep whichever keys won.
        with contextlib.suppress(Conflict):
            await run.kube.create(body)
        await run.event("Normal", *event)
    elif controlled_by(existing, g.uid):
        run.reads.secret_seen(g.namespace, name, g.uid)
    else:
        run.problems.append(
            (Reason.CHILD_CONFLICT, f"Secret {name} exists and is not owned by this graph")
        )


async def _plan_placement(run: _Run, g: GraphInputs) -> tuple[MapPlan, PendingMove | None]:
    """The graph's next shard map (see :mod:`memorygraph_operator.render.shardmap`), from the
    one in the API server, and the move under way it records."""
    names = Names(g.name)
    body = await run.reads.with_data(CONFIGMAP, g.namespace, names.shard_map)
    current, move = None, None
    if body is not None and controlled_by(body, g.uid):
        data = body.get("data") or {}
        current = parse_shard_map(data.get(SHARD_MAP_KEY))
        move = parse_move(data.get(MOVE_KEY), current)
    if current is not None:
        return plan_shard_map(g, current, None, move), move
    return await _first_map(run, g, body), None


async def _first_map(run: _Run, g: GraphInputs, body: Mapping[str, Any] | None) -> MapPlan:
    """The map of a graph without a map written (``body``: its ConfigMap, if any)."""
    names = Names(g.name)
    if body is not None:  # there, but not a map this graph's operator wrote
        problem = f"the shard map ConfigMap {names.shard_map} is not this graph's"
        return MapPlan(None, (Reason.SHARD_MAP_MISSING, problem))
    # What follows decides for good: asked of the API server, not of a watch that may lag.
    sts = await run.kube.get(STATEFULSET, g.namespace, names.statefulset)
    if sts is None:
        return plan_shard_map(g, None, None)  # a new graph
    annotations = (sts.get("metadata") or {}).get("annotations") or {}
    if ANNOTATION_SHARD_MAP in annotations:
        # Its pods serve a map that is gone: nothing may be rendered for them until it is back.
        problem = f"the shard map ConfigMap {names.shard_map} is gone"
        return MapPlan(None, (Reason.SHARD_MAP_MISSING, problem))
    replicas = int((sts.get("spec") or {}).get("replicas") or 0)
    selector = ",".join(f"{k}={v}" for k, v in selector_labels(g).items())
    claims = await run.kube.list(PVC, g.namespace, selector)
    return plan_shard_map(g, None, max(replicas, len(claims)))


def new_peer_key() -> str:
    """A new random key for a graph's pods to present to each other (256 bits)."""
    return "mgp_" + secrets.token_urlsafe(32)


async def _peer_key(run: _Run, g: GraphInputs) -> str | None:
    """The key the graph's pods take on their peer port (None: its Secret is not there)."""
    secret = await run.kube.get(SECRET, g.namespace, Names(g.name).peer_secret)
    if secret is None or not controlled_by(secret, g.uid):
        return None
    try:
        return base64.b64decode((secret.get("data") or {})[PEER_KEY]).decode().strip() or None
    except (KeyError, ValueError, binascii.Error):
        return None


async def _rebalance(
    run: _Run, g: GraphInputs, peers: Peers, plan: MapPlan, move: PendingMove | None
) -> tuple[MapPlan, Rebalance | None]:
    """The moves of this reconcile (see :mod:`.moves`), and the map after them."""
    if plan.shard_map is None or plan.held is not None:
        return plan, None
    with_map = dataclasses.replace(g, shard_map=plan.shard_map, move=move)
    key = None
    if needs_pods(plan.shard_map, move, g.spec.replicas):
        key = await _peer_key(run, with_map)

    async def record(m: ShardMap, move: PendingMove) -> bool:
        return await _record_map(run, dataclasses.replace(g, shard_map=m, move=move))

    async def ran(pod: int) -> bool:
        claim = f"{DATA_VOLUME}-{Names(g.name).statefulset}-{pod}"
        found = await run.kube.get(PVC, g.namespace, claim)
        return found is not None and (found.get("status") or {}).get("phase") == "Bound"

    done = await rebalance(with_map, peers, key, record, ran)
    return plan_shard_map(g, done.shard_map, None, done.move, done.keep), done


async def _apply_map(
    run: _Run, g: GraphInputs, child: Child, existing: Observed | None
) -> tuple[dict[str, Any] | None, bool]:
    """Apply the map's ConfigMap ``child``: the body as applied, and whether it was."""
    assert child.body is not None
    refused = len(run.problems)
    applied = await run.apply(child, g, existing)
    written = applied is not None and len(run.problems) == refused
    if written and applied is not None:  # as applied, at the version it got
        meta = {**child.body["metadata"], **applied["metadata"]}
        run.reads.remember_data(g.namespace, child.name, {**child.body, "metadata": meta})
    return applied, written


async def _record_map(run: _Run, g: GraphInputs) -> bool:
    """Write ``g``'s map with its move under way now (before the move is asked for). A
    refusal is the move's to report (it waits), not the graph's: the final apply says."""
    child = Child("v1", "ConfigMap", Names(g.name).shard_map, render_shard_map(g))
    problems = list(run.problems)
    written = (await _apply_map(run, g, child, await run.get(child, g)))[1]
    run.problems[:] = problems
    return written


async def _ensure_peer_secret(run: _Run, g: GraphInputs) -> None:
    """Create the peer-key Secret once (as the API keys); never update nor delete it."""
    if g.shard_map is None:
        return
    name = Names(g.name).peer_secret
    await _create_secret_once(
        run,
        g,
        name,
        lambda: render_peer_secret(g, new_peer_key()),
        (EventReason.PEER_KEY_GENERATED, f"peer key generated in Secret {name}"),
    )


async def _warn_exposed_without_tls(
    run: _Run, g: GraphInputs, child: Child, existing: Observed | None
) -> None:
    """A Warning Event when the client Service becomes reachable from outside in plaintext.

    Posted when the Service is created or changes type, not on every reconcile: API keys then
    cross networks unencrypted, which may be deliberate (TLS ends at the load balancer).
    """
    if child.body is None or not g.spec.exposed or g.spec.tls is not None:
        return
    wanted = child.body["spec"]["type"]
    if existing is not None and (existing.body.get("spec") or {}).get("type") == wanted:
        return
    await run.event(
        "Warning",
        EventReason.EXPOSED_WITHOUT_TLS,
        f"Service {child.name} is of type {wanted} without spec.tls: API keys and data cross "
        "the network in plaintext unless TLS ends in front of it",
    )


async def record_invalid_spec(
    kube: Kube, body: Mapping[str, Any], message: str, now: datetime.datetime
) -> dict[str, Any]:
    """Report an invalid spec on the graph (status and, on transition, an Event)."""
    meta = body.get("metadata") or {}
    previous = body.get("status") or {}
    status = invalid_spec_status(previous, meta.get("generation"), message, _stamp(now))
    # Resyncs and child events come back to an invalid graph: write only what changed.
    if {k: previous.get(k) for k in status} != status:
        await kube.merge_patch(GRAPH, meta["namespace"], meta["name"], {"status": status}, "status")
    for type_, reason, msg in transition_events(previous.get("conditions"), status["conditions"]):
        await kube.post_event(body, type_, reason, msg, now)
    return status


async def _patch_status(run: _Run, status: dict[str, Any]) -> None:
    meta = run.body.get("metadata") or {}
    previous = run.body.get("status") or {}
    if {k: previous.get(k) for k in status} != status:
        await run.kube.merge_patch(
            GRAPH, meta["namespace"], meta["name"], {"status": status}, "status"
        )
    for type_, reason, msg in transition_events(previous.get("conditions"), status["conditions"]):
        await run.event(type_, reason, msg)


async def _apply_children(
    run: _Run, g: GraphInputs, env: RenderEnv, sm_available: bool, *, hold_pods: bool
) -> dict[str, dict[str, Any] | None]:
    """Apply or prune every child in order. With ``hold_pods`` (the pods' shard map is gone)
    nothing is changed; the StatefulSet is left as it is when the map's apply fails just now.
    Returns the bodies by kind, as applied or as they are."""
    observed: dict[str, dict[str, Any] | None] = {}
    map_written = True
    names = Names(g.name)
    for child in render_children(g, env):
        if child.kind == "ServiceMonitor" and not sm_available:
            continue  # neither applicable nor listable without the CRD
        existing = await run.get(child, g)
        if hold_pods or (child.kind == "StatefulSet" and not map_written):
            # Its pods would read a map that is not there: everything stays as it is.
            observed[child.kind] = existing.body if existing is not None else None
            continue
        if child.kind == "Service" and child.name == names.service:
            await _warn_exposed_without_tls(run, g, child, existing)
        if child.body is not None:
            if child.name == names.shard_map:
                observed[child.kind], map_written = await _apply_map(run, g, child, existing)
            else:
                observed[child.kind] = await run.apply(child, g, existing)
        elif child.name != names.shard_map:  # a map is never taken back
            await run.prune(child, g, existing)
    return observed


async def reconcile_graph(
    reads: ClusterReads | Kube,
    body: Mapping[str, Any],
    base_env: RenderEnv,
    now: datetime.datetime,
    peers: Peers | None = None,
) -> Outcome:
    """Bring the graph's children in line with its spec and report the result in its status.

    ``reads`` is where the cluster is read (a bare API client reads everything from the API).
    Raises :class:`InvalidSpec` (after recording it) when the spec cannot be rendered, and the
    API errors of :mod:`memorygraph_operator.errors` when the API server fails; the caller
    decides about retries. With ``peers``, the graph's pods are asked which shards they serve
    and shards are moved between them (:mod:`.moves`); without, the map only follows
    ``replicas`` where no move is needed.
    """
    if isinstance(reads, Kube):
        reads = ClusterReads(reads)
    kube = reads.kube
    meta = body.get("metadata") or {}
    run = _Run(reads, body, now)
    if is_paused(meta):
        status = paused_status(body.get("status"), meta.get("generation"), _stamp(now))
        await _patch_status(run, status)
        return Outcome(status=status, paused=True)

    namespace = meta["namespace"]
    try:
        bare = parse_graph(body)
    except InvalidSpec as exc:
        await record_invalid_spec(kube, body, str(exc), now)
        raise
    plugins = await reads.plugins(namespace)
    selection = select_plugins(bare.spec, plugins)
    g = dataclasses.replace(bare, plugins=selection.selected)
    selected = {p.name for p in selection.selected} | set(selection.invalid)
    await record_plugin_users(kube, namespace, g.name, plugins, selected)
    if selection.missing:
        run.problems.append(
            (Reason.MISSING_PLUGINS, f"plugins not found: {', '.join(selection.missing)}")
        )
    if selection.invalid:
        run.problems.append(
            (Reason.INVALID_PLUGINS, f"invalid plugins left out: {', '.join(selection.invalid)}")
        )

    sm_available = await reads.served("monitoring.coreos.com/v1", "servicemonitors")
    env = dataclasses.replace(base_env, service_monitor_available=sm_available)
    wants_sm = g.spec.monitoring is not None and g.spec.monitoring.service_monitor.enabled
    if wants_sm and not sm_available:
        run.problems.append(
            (
                Reason.SERVICE_MONITOR_UNAVAILABLE,
                "monitoring.serviceMonitor is enabled but its CRD is missing",
            )
        )

    plan, move = await _plan_placement(run, g)
    moves = None
    if peers is not None:
        plan, moves = await _rebalance(run, g, peers, plan, move)
        move = moves.move if moves is not None else move
    g = dataclasses.replace(g, shard_map=plan.shard_map, move=move)
    if plan.held is not None:
        run.problems.append(plan.held)
    await _ensure_auth_secret(run, g)
    await _ensure_peer_secret(run, g)

    hold_pods = plan.held is not None and plan.held[0] is Reason.SHARD_MAP_MISSING
    observed = await _apply_children(run, g, env, sm_available, hold_pods=hold_pods)

    sts = observed.get("StatefulSet")
    obs = Observation(
        name=g.name,
        namespace=namespace,
        generation=meta.get("generation"),
        statefulset=sts,
        desired_replicas=None if g.spec.autoscaled else statefulset_replicas(g),
        autoscaled=g.spec.autoscaled,
        selector=",".join(f"{k}={v}" for k, v in selector_labels(g).items()),
        config_hash=config_hash(g),
        plugins=tuple(p.name for p in g.plugins),
        cronjob=observed.get("CronJob"),
        problems=tuple(run.problems),
        previous=body.get("status"),
        shard_map=g.shard_map,
        move=g.move,
        rebalancing=None if moves is None else _rebalancing(moves),
    )
    status = graph_status(obs, _stamp(now))
    await _patch_status(run, status)
    outcome = Outcome(status=status, applied=tuple(run.applied), deleted=tuple(run.deleted))
    if moves is None:
        return outcome
    return dataclasses.replace(
        outcome,
        moved=moves.moved,
        move_failures=moves.failed,
        move_stuck=moves.stuck,
        again_in=moves.again_in,
    )


def _rebalancing(moves: Rebalance) -> ConditionSpec:
    return ConditionSpec(
        ConditionType.REBALANCING,
        "True" if moves.rebalancing else "False",
        moves.reason,
        moves.message,
    )
