"""Status conditions in the ``metav1.Condition`` shape shared by both kinds."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from memorygraph_operator.api.base import KubeModel

__all__ = ["Condition", "ConditionStatus", "ConditionType"]

ConditionType = Literal["Ready", "Available", "Progressing", "Degraded", "Paused"]
ConditionStatus = Literal["True", "False", "Unknown"]


class Condition(KubeModel):
    """One observation of the resource's state, exactly as ``metav1.Condition`` defines it."""

    type: str = Field(description="Ready, Available, Progressing, Degraded or Paused.")
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
