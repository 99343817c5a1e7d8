"""Status of a MemoryGraph computed from what was observed. Pure: the time is a parameter.

Every status is built as the API's status model (:class:`MemoryGraphStatus`, :class:`Condition`)
and only then turned into the patch: the fields written are the fields the CRD declares, and a
field renamed in the model cannot leave a stale key behind here (the API server would silently
prune it).

Conditions follow ``metav1.Condition``: ``lastTransitionTime`` only moves when a condition's
status changes, so watching tools (Argo CD, ``kubectl wait``) see stable objects.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from memorygraph_operator.api.archival import ArchivalStatus
from memorygraph_operator.api.conditions import (
    Condition,
    ConditionStatus,
    ConditionType,
    EventReason,
    Reason,
)
from memorygraph_operator.api.memorygraph import Endpoints, MemoryGraphStatus, ShardsStatus
from memorygraph_operator.render.context import PendingMove, ShardMap
from memorygraph_operator.render.image import GRPC_PORT, METRICS_PORT

__all__ = [
    "ConditionSpec",
    "Observation",
    "condition",
    "graph_status",
    "invalid_spec_status",
    "merge_conditions",
    "paused_status",
    "transition_events",
]


@dataclass(frozen=True)
class ConditionSpec:
    """A condition without its transition time."""

    type: ConditionType
    status: ConditionStatus
    reason: Reason
    message: str = ""


def condition(type_: ConditionType, ok: bool, reason: Reason, message: str = "") -> ConditionSpec:
    """Shorthand for a True/False condition."""
    return ConditionSpec(type_, "True" if ok else "False", reason, message)


def merge_conditions(
    previous: Sequence[Mapping[str, Any]] | None,
    new: Sequence[ConditionSpec],
    generation: int | None,
    now: str,
) -> list[Condition]:
    """The conditions to write; transition times kept from ``previous`` when status is unchanged.

    Conditions of types not in ``new`` are kept as they were (e.g. Ready while paused).
    """
    old = {c.get("type"): c for c in previous or []}
    out: list[Condition] = []
    seen = set()
    for c in new:
        seen.add(c.type)
        before = old.get(c.type)
        since = now
        if before is not None and before.get("status") == c.status:
            since = str(before.get("lastTransitionTime") or now)
        known: dict[str, Any] = {} if generation is None else {"observed_generation": generation}
        out.append(
            Condition(
                type=c.type,
                status=c.status,
                reason=c.reason,
                message=c.message,
                last_transition_time=since,
                **known,
            )
        )
    out.extend(Condition.model_validate(dict(c)) for t, c in old.items() if t not in seen)
    return out


@dataclass(frozen=True)
class Observation:
    """What one reconcile saw and decided, the input of :func:`graph_status`."""

    name: str
    namespace: str
    generation: int | None
    statefulset: Mapping[str, Any] | None
    desired_replicas: int | None
    autoscaled: bool
    selector: str
    config_hash: str
    plugins: tuple[str, ...] = ()
    cronjob: Mapping[str, Any] | None = None
    problems: tuple[tuple[Reason, str], ...] = field(default=())  # (reason, message) → Degraded
    previous: Mapping[str, Any] | None = None
    # The shard map written, the move under way, and the Rebalancing condition (None: the
    # graph has no map, or its pods were not asked).
    shard_map: ShardMap | None = None
    move: PendingMove | None = None
    rebalancing: ConditionSpec | None = None


def _shards(m: ShardMap, move: PendingMove | None, before: Mapping[str, Any]) -> ShardsStatus:
    moving: dict[str, Any] = {}
    if move is not None:
        moving["moving"] = f"shard {move.shard} from pod {move.source} to pod {move.target}"
    elif before.get("moving"):
        moving["moving"] = None  # a merge patch keeps a field it leaves out: null removes it
    return ShardsStatus(
        count=len(m.owners),
        epoch=m.epoch,
        per_pod=list(m.spread()),
        spread=m.spread_text(),
        moves=sum(m.shard_epochs),
        **moving,
    )


def _rollout(sts: Mapping[str, Any], want: int) -> tuple[bool, str]:
    """Whether the StatefulSet's rollout is complete, and why not."""
    meta = sts.get("metadata") or {}
    st = sts.get("status") or {}
    if st.get("observedGeneration", 0) < meta.get("generation", 0):
        return False, "the StatefulSet controller has not observed the latest spec yet"
    if st.get("updateRevision") and st.get("currentRevision") != st.get("updateRevision"):
        return False, f"{st.get('updatedReplicas', 0)} of {want} pods updated"
    if st.get("updatedReplicas", 0) < want and st.get("updateRevision"):
        return False, f"{st.get('updatedReplicas', 0)} of {want} pods updated"
    if st.get("readyReplicas", 0) < want:
        return False, f"{st.get('readyReplicas', 0)} of {want} pods ready"
    if st.get("replicas", 0) > want:
        return False, f"scaling in to {want} pods"
    return True, ""


def graph_status(o: Observation, now: str) -> dict[str, Any]:
    """The full ``status`` of a graph that was reconciled (not paused, spec valid)."""
    previous = o.previous or {}
    sts = o.statefulset or {}
    st = sts.get("status") or {}
    want = o.desired_replicas
    if want is None:  # autoscaled: the size applied (the graph's, or one adopted on upgrade)
        want = int((sts.get("spec") or {}).get("replicas", 1))
    ready = int(st.get("readyReplicas", 0))
    conds: list[ConditionSpec] = []
    if not sts:
        done, why = False, "the StatefulSet does not exist yet"
    else:
        done, why = _rollout(sts, want)
    conds.append(
        condition(
            ConditionType.AVAILABLE,
            ready > 0,
            Reason.REPLICAS_READY if ready else Reason.NO_REPLICAS_READY,
            f"{ready} of {want} pods ready",
        )
    )
    rebalancing = o.rebalancing
    if done and rebalancing is not None and rebalancing.status == "True":
        conds.append(
            condition(ConditionType.PROGRESSING, True, Reason.REBALANCING, rebalancing.message)
        )
    else:
        conds.append(
            condition(
                ConditionType.PROGRESSING,
                not done,
                Reason.ROLLOUT_IN_PROGRESS if not done else Reason.ROLLOUT_COMPLETE,
                why,
            )
        )
    if rebalancing is not None:
        conds.append(rebalancing)
    if o.problems:
        reason = o.problems[0][0]
        message = "; ".join(m for _, m in o.problems)
        conds.append(condition(ConditionType.DEGRADED, True, reason, message))
    else:
        conds.append(condition(ConditionType.DEGRADED, False, Reason.AS_EXPECTED))
    if done and not o.problems:
        msg = f"{ready} of {want} pods ready" if want else "scaled to zero"
        reason = Reason.READY if want else Reason.SCALED_TO_ZERO
        conds.append(condition(ConditionType.READY, True, reason, msg))
    elif o.problems:
        conds.append(condition(ConditionType.READY, False, o.problems[0][0], o.problems[0][1]))
    else:
        conds.append(condition(ConditionType.READY, False, Reason.ROLLOUT_IN_PROGRESS, why))
    conds.append(condition(ConditionType.PAUSED, False, Reason.RECONCILING))

    template = ((sts.get("spec") or {}).get("template") or {}).get("spec") or {}
    containers = template.get("containers") or [{}]
    image = containers[0].get("image") if done else previous.get("currentImage")
    # Unknown values are left out, not written as null (which a merge patch reads as delete).
    known: dict[str, Any] = {}
    if image:
        known["current_image"] = image
    if o.shard_map is not None:
        known["shards"] = _shards(o.shard_map, o.move, previous.get("shards") or {})
    if o.cronjob is not None:
        cron = o.cronjob.get("status") or {}
        times = ("lastScheduleTime", "lastSuccessfulTime")
        known["archival"] = ArchivalStatus.model_validate(
            {k: cron[k] for k in times if cron.get(k)}
        )
    return MemoryGraphStatus(
        observed_generation=o.generation,
        conditions=merge_conditions(previous.get("conditions"), conds, o.generation, now),
        replicas=int(st.get("replicas", 0)),
        ready_replicas=ready,
        selector=o.selector,
        endpoints=Endpoints(
            grpc=f"{o.name}.{o.namespace}.svc:{GRPC_PORT}",
            metrics=f"http://{o.name}.{o.namespace}.svc:{METRICS_PORT}/metrics",
        ),
        config_hash=o.config_hash,
        plugins=list(o.plugins),
        **known,
    ).merge_patch()


def invalid_spec_status(
    previous: Mapping[str, Any] | None, generation: int | None, message: str, now: str
) -> dict[str, Any]:
    """Status patch for a graph whose spec cannot be reconciled; children stay as they were."""
    prev = previous or {}
    conds = [
        condition(ConditionType.READY, False, Reason.INVALID_SPEC, message),
        condition(ConditionType.DEGRADED, True, Reason.INVALID_SPEC, message),
        condition(
            ConditionType.PROGRESSING, False, Reason.INVALID_SPEC, "waiting for a valid spec"
        ),
    ]
    return MemoryGraphStatus(
        observed_generation=generation,
        conditions=merge_conditions(prev.get("conditions"), conds, generation, now),
    ).merge_patch()


def paused_status(
    previous: Mapping[str, Any] | None, generation: int | None, now: str
) -> dict[str, Any]:
    """Status patch of a paused graph: Paused=True, everything else as last observed.

    ``observedGeneration`` is deliberately not advanced: the latest spec has not been acted on.
    """
    prev = previous or {}
    conds = [
        condition(ConditionType.PAUSED, True, Reason.PAUSE_ANNOTATION, "reconciliation is paused")
    ]
    conditions = merge_conditions(prev.get("conditions"), conds, None, now)
    return MemoryGraphStatus(conditions=conditions).merge_patch()


_EVENTS = {
    # (condition type, new status) → event type
    (ConditionType.READY, "True"): "Normal",
    (ConditionType.DEGRADED, "True"): "Warning",
    (ConditionType.PAUSED, "True"): "Normal",
    (ConditionType.PAUSED, "False"): "Normal",
    # Moves starting, stuck (Warning) and done.
    (ConditionType.REBALANCING, "True"): "Normal",
    (ConditionType.REBALANCING, "False"): "Normal",
}


def transition_events(
    previous: Sequence[Mapping[str, Any]] | None, current: Sequence[Mapping[str, Any]]
) -> list[tuple[str, str, str]]:
    """Curated Events ``(type, reason, message)`` for condition changes worth a human's time.

    Only transitions produce Events (a new reason counts), so a graph that stays degraded does
    not flood the namespace on every resync.
    """
    old = {c.get("type"): c for c in previous or []}
    events = []
    for c in current:
        key = (str(c.get("type")), str(c.get("status")))
        if key not in _EVENTS:
            continue
        before = old.get(c.get("type"))
        if before is not None and (before.get("status"), before.get("reason")) == (
            c.get("status"),
            c.get("reason"),
        ):
            continue
        if key == (ConditionType.PAUSED, "False") and before is None:
            continue  # never paused: no "resumed" event
        reason = str(c["reason"])
        if key[0] == ConditionType.PAUSED:
            paused = key[1] == "True"
            reason = EventReason.PAUSED.value if paused else EventReason.RESUMED.value
        type_ = _EVENTS[key]
        if key[0] == ConditionType.REBALANCING:
            if key[1] == "False" and before is None:
                continue  # balanced from the start: nothing happened worth a note
            type_ = "Warning" if reason == Reason.MOVE_STUCK else "Normal"
        events.append((type_, reason, str(c.get("message") or reason)))
    return events
