"""Status conditions in the ``metav1.Condition`` shape shared by both kinds, and their vocabulary.

Every condition type and reason the operator writes, and every reason of the Events it posts,
is a member of :class:`ConditionType`, :class:`Reason` or :class:`EventReason`: they are part of
the API (``kubectl wait --for=condition=Ready``, alerts on reasons, Argo CD's health check), so
they are spelt here once and nowhere else.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Literal

from pydantic import Field

from memorygraph_operator.api.base import KubeModel

__all__ = ["Condition", "ConditionStatus", "ConditionType", "EventReason", "Reason"]


class ConditionType(StrEnum):
    """The condition types: all six on a MemoryGraph (Rebalancing once it has a shard map),
    Ready alone on a Plugin."""

    READY = "Ready"
    AVAILABLE = "Available"
    PROGRESSING = "Progressing"
    DEGRADED = "Degraded"
    PAUSED = "Paused"
    REBALANCING = "Rebalancing"


class Reason(StrEnum):
    """The reasons conditions carry (CamelCase, as ``metav1.Condition`` requires)."""

    # Ready
    READY = "Ready"
    SCALED_TO_ZERO = "ScaledToZero"
    # Available
    REPLICAS_READY = "ReplicasReady"
    NO_REPLICAS_READY = "NoReplicasReady"
    # Progressing, and Ready while a rollout is under way
    ROLLOUT_IN_PROGRESS = "RolloutInProgress"
    ROLLOUT_COMPLETE = "RolloutComplete"
    # Degraded, and Ready while degraded
    AS_EXPECTED = "AsExpected"
    INVALID_SPEC = "InvalidSpec"
    MISSING_PLUGINS = "MissingPlugins"
    INVALID_PLUGINS = "InvalidPlugins"
    CHILD_CONFLICT = "ChildConflict"
    APPLY_FAILED = "ApplyFailed"
    SERVICE_MONITOR_UNAVAILABLE = "ServiceMonitorUnavailable"
    INDEPENDENT_STORES = "IndependentStores"
    SHARD_MAP_MISSING = "ShardMapMissing"
    # Rebalancing (and Progressing while it is True)
    BALANCED = "Balanced"
    MOVING_SHARDS = "MovingShards"
    WAITING_FOR_PODS = "WaitingForPods"
    MOVE_STUCK = "MoveStuck"
    REBALANCING = "Rebalancing"
    # Paused
    PAUSE_ANNOTATION = "PauseAnnotation"
    RECONCILING = "Reconciling"
    # Ready of a Plugin
    VALID = "Valid"


class EventReason(StrEnum):
    """Reasons of the Events that do not repeat a condition's reason."""

    PAUSED = "Paused"
    RESUMED = "Resumed"
    API_KEYS_GENERATED = "APIKeysGenerated"
    STORAGE_EXPANDED = "StorageExpanded"
    PLUGIN_DELETED = "PluginDeleted"
    EXPOSED_WITHOUT_TLS = "ExposedWithoutTLS"
    REPLICAS_ADOPTED = "ReplicasAdopted"
    PEER_KEY_GENERATED = "PeerKeyGenerated"


ConditionStatus = Literal["True", "False", "Unknown"]

_TYPES = [t.value for t in ConditionType]


class Condition(KubeModel):
    """One observation of the resource's state, exactly as ``metav1.Condition`` defines it."""

    type: str = Field(description=f"{', '.join(_TYPES[:-1])} or {_TYPES[-1]}.")
    status: ConditionStatus
    observed_generation: int | None = Field(default=None, ge=0)
    last_transition_time: str = Field(
        description="When the status last changed (RFC 3339).",
        json_schema_extra={"format": "date-time"},
    )
    reason: str = Field(
        pattern=r"^[A-Za-z]([A-Za-z0-9_,:]*[A-Za-z0-9_])?$",
        max_length=1024,
        description="CamelCase machine-readable reason.",
    )
    message: str = Field(default="", max_length=32768, description="Human-readable detail.")
