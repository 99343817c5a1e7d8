"""The ``Plugin`` custom resource: one hook plugin of the data plane.

A Plugin does nothing on its own; every MemoryGraph that selects it (by name or label) gets it in
its ``plugins.yaml``. Built-in types take free-form ``config``; webhooks need ``webhook``.
"""

from __future__ import annotations

from typing import Any, Literal

from memorygraph.plugins.schema import Hook
from pydantic import Field, model_validator

from memorygraph_operator.api.base import KubeModel, SecretKeyRef, cel, preserve_unknown
from memorygraph_operator.api.conditions import Condition

__all__ = ["HOOKS", "RESERVED_CONFIG_KEYS", "Plugin", "PluginSpec", "PluginStatus", "WebhookSpec"]

# The data plane's hook points, so the API server refuses a misspelt hook at admission.
HOOKS = [h.value for h in Hook]
_HOOK_ITEMS: dict[str, Any] = {"items": {"type": "string", "enum": HOOKS}}

# Keys of ``config`` that the operator writes itself, from the fields that hold them. A
# ``token_file`` of the user's choosing would make the data plane send any file it can read (the
# API keys, another plugin's token) as a bearer token; the only token a webhook sends is the one
# its own Secret holds, mounted under the plugin's name.
RESERVED_CONFIG_KEYS = {
    "token_file": "webhook.tokenSecretRef",
    "url": "webhook.url",
    "ca_bundle": "webhook.caBundle",
}


def _config_schema() -> dict[str, Any]:
    """Free-form, except for the reserved keys: declared (CEL sees declared fields only) so that
    a rule can refuse them at admission."""
    return {
        **preserve_unknown(),
        "properties": {
            key: {"type": "string", "description": f"Not accepted here: set spec.{field}."}
            for key, field in RESERVED_CONFIG_KEYS.items()
        },
        **cel(
            *(
                (f"!has(self.{key})", f"config.{key} is not accepted: set spec.{field} instead")
                for key, field in RESERVED_CONFIG_KEYS.items()
            )
        ),
    }


class WebhookSpec(KubeModel):
    """Where a webhook plugin sends the hook calls."""

    url: str = Field(pattern=r"^https?://", description="Endpoint receiving the hook calls.")
    ca_bundle: str | None = Field(default=None, description="PEM CA bundle to verify the endpoint.")
    token_secret_ref: SecretKeyRef | None = Field(
        default=None, description="Bearer token sent to the endpoint, mounted into the pods."
    )


class PluginSpec(KubeModel):
    """Desired state of a Plugin."""

    model_config = KubeModel.model_config | {
        "json_schema_extra": cel(
            ("self.type != 'Webhook' || has(self.webhook)", "webhook plugins need spec.webhook"),
            (
                "self.type == 'Webhook' || !has(self.webhook)",
                "only webhook plugins take spec.webhook",
            ),
        )
    }

    type: Literal["Validator", "Redactor", "Enricher", "Quota", "Webhook"] = Field(
        description="Built-in plugin kind, or Webhook for an external service."
    )
    enabled: bool = Field(
        default=True, description="Disabled plugins stay in the config, inactive."
    )
    order: int = Field(
        default=100, ge=0, le=10000, description="Plugins run in ascending order, then by name."
    )
    timeout_seconds: float = Field(default=5.0, gt=0, le=60, description="Per-call time limit.")
    failure_policy: Literal["Fail", "Ignore"] = Field(
        default="Fail",
        description="Fail rejects the operation when the plugin errs or times out; Ignore goes on.",
    )
    hooks: list[str] = Field(
        min_length=1,
        description="Hook points, e.g. before_create_node or after_create_session.",
        json_schema_extra=_HOOK_ITEMS,
    )
    config: dict[str, Any] | None = Field(
        default=None,
        description=(
            "Type-specific settings, passed to the plugin unchanged; a webhook's endpoint, CA "
            "and token have fields of their own."
        ),
        json_schema_extra=_config_schema(),
    )
    webhook: WebhookSpec | None = None

    @model_validator(mode="after")
    def _webhook_matches_type(self) -> PluginSpec:
        if (self.type == "Webhook") != (self.webhook is not None):
            raise ValueError("webhook plugins need spec.webhook, and only they take it")
        bad = [h for h in self.hooks if h not in HOOKS]
        if bad:
            raise ValueError(f"unknown hook names: {', '.join(bad)}")
        for key, field in RESERVED_CONFIG_KEYS.items():
            if key in (self.config or {}):
                raise ValueError(f"config.{key} is not accepted: set spec.{field} instead")
        return self


class PluginStatus(KubeModel):
    """Observed state of a Plugin."""

    observed_generation: int | None = None
    conditions: list[Condition] | None = Field(
        default=None,
        json_schema_extra={"x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["type"]},
    )
    used_by: list[str] | None = Field(
        default=None, description="MemoryGraphs selecting this plugin."
    )


class Plugin(KubeModel):
    """A data-plane hook plugin, shared by the MemoryGraphs that select it."""

    model_config = KubeModel.model_config | {"extra": "ignore"}

    spec: PluginSpec
    status: PluginStatus | None = None
