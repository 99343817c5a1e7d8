"""Shared building blocks of the custom resource models.

The models in this package are the single source of the CRD schemas, so every field here must be
expressible as a structural OpenAPI schema: no unions other than "X or absent", no free-form
values except where a Kubernetes type is embedded on purpose (marked with ``preserve_unknown``).
"""

from __future__ import annotations

import re
from decimal import Decimal
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field
from pydantic.alias_generators import to_camel

__all__ = [
    "API_VERSION",
    "GROUP",
    "QUANTITY_PATTERN",
    "VERSION",
    "KubeModel",
    "LabelSelector",
    "Quantity",
    "SecretKeyRef",
    "SecretRef",
    "cel",
    "int_or_string",
    "preserve_unknown",
    "quantity_value",
]

# The one place the API group and version are spelt: CRDs, handlers, owner references, label
# and annotation keys all derive from these.
GROUP = "memorygraph.io"
VERSION = "v1alpha1"
API_VERSION = f"{GROUP}/{VERSION}"

# The Kubernetes resource.Quantity grammar, restricted to the forms users write by hand.
QUANTITY_PATTERN = r"^[0-9]+(\.[0-9]+)?(m|k|M|G|T|P|E|Ki|Mi|Gi|Ti|Pi|Ei)?$"


def cel(*rules: tuple[str, str]) -> dict[str, Any]:
    """CEL validation rules as schema extras: ``(rule, message)`` pairs.

    Rules live next to the field they guard so the model reads as the API's contract.
    """
    return {"x-kubernetes-validations": [{"rule": r, "message": m} for r, m in rules]}


def preserve_unknown(json_type: str = "object") -> dict[str, Any]:
    """Schema extras for an embedded Kubernetes type we pass through without re-modelling it."""
    return {"type": json_type, "x-kubernetes-preserve-unknown-fields": True}


def int_or_string() -> dict[str, Any]:
    """Schema extras for ``IntOrString`` fields (e.g. ``maxUnavailable: 1`` or ``"25%"``)."""
    return {"x-kubernetes-int-or-string": True}


Quantity = Annotated[str, Field(pattern=QUANTITY_PATTERN)]

_SUFFIXES: dict[str, Decimal] = {
    "": Decimal(1),
    "m": Decimal("0.001"),
    **{s: Decimal(1000**i) for i, s in enumerate("kMGTPE", 1)},
    **{s: Decimal(1024**i) for i, s in enumerate(["Ki", "Mi", "Gi", "Ti", "Pi", "Ei"], 1)},
}


def quantity_value(text: str) -> Decimal:
    """The amount a quantity written as :data:`QUANTITY_PATTERN` allows stands for.

    The API server stores quantities in canonical form (``1024Mi`` comes back as ``1Gi``), so
    quantities are compared by value, never as strings.
    """
    match = re.fullmatch(QUANTITY_PATTERN.strip("^$"), text)
    if match is None:
        raise ValueError(f"{text!r} is not a quantity")
    suffix = match.group(2) or ""
    return Decimal(text.removesuffix(suffix)) * _SUFFIXES[suffix]


class KubeModel(BaseModel):
    """Base of every API model: camelCase on the wire, unknown fields rejected.

    Rejecting unknown fields in the operator mirrors the structural schema's pruning: a typo in a
    manifest becomes an ``InvalidSpec`` condition instead of being silently ignored.
    """

    model_config = ConfigDict(
        alias_generator=to_camel,
        populate_by_name=True,
        extra="forbid",
        frozen=True,
    )

    def wire(self) -> dict[str, Any]:
        """The camelCase dict a user would write, without unset optional fields."""
        return self.model_dump(by_alias=True, exclude_none=True, mode="json")

    def merge_patch(self) -> dict[str, Any]:
        """The fields given to the constructor as a JSON merge patch (camelCase).

        Fields not given are left out, so the patch keeps what the object has there; a field
        given as None is kept as null, which removes it.
        """
        return self.model_dump(by_alias=True, exclude_unset=True, mode="json")


class SecretRef(KubeModel):
    """A Secret in the resource's own namespace."""

    name: str = Field(min_length=1, max_length=253, description="Name of the Secret.")


class SecretKeyRef(KubeModel):
    """One key of a Secret in the resource's own namespace."""

    name: str = Field(min_length=1, max_length=253, description="Name of the Secret.")
    key: str = Field(default="token", min_length=1, description="Key inside the Secret.")


class LabelSelectorRequirement(KubeModel):
    """One matchExpressions entry of a label selector."""

    key: str
    operator: str = Field(pattern=r"^(In|NotIn|Exists|DoesNotExist)$")
    values: list[str] | None = None


class LabelSelector(KubeModel):
    """A Kubernetes label selector (``matchLabels`` and ``matchExpressions``)."""

    match_labels: dict[str, str] | None = None
    match_expressions: list[LabelSelectorRequirement] | None = None

    def matches(self, labels: dict[str, str]) -> bool:
        """Whether ``labels`` satisfy this selector, with the API server's semantics."""
        for key, value in (self.match_labels or {}).items():
            if labels.get(key) != value:
                return False
        for req in self.match_expressions or []:
            present = req.key in labels
            values = set(req.values or [])
            if req.operator == "In" and not (present and labels[req.key] in values):
                return False
            if req.operator == "NotIn" and present and labels[req.key] in values:
                return False
            if req.operator == "Exists" and not present:
                return False
            if req.operator == "DoesNotExist" and present:
                return False
        return True
