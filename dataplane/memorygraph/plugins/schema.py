"""The plugin schema: hook points and what `plugins.yaml` may say about each plugin.

The one module of the data plane the operator imports (it renders `plugins.yaml` from Plugin
resources and validates them with these models), so it depends on pydantic and RE2 only: no
gRPC, no storage, no other part of `memorygraph`.
"""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

__all__ = [
    "CONFIG_MODELS",
    "DEFAULT_HOOKS",
    "EnricherConfig",
    "Hook",
    "PluginSpec",
    "PluginsFile",
    "QuotaConfig",
    "RedactorConfig",
    "ValidatorConfig",
    "WebhookConfig",
    "compile_re2",
]


class Hook(StrEnum):
    BEFORE_CREATE_SESSION = "before_create_session"
    AFTER_CREATE_SESSION = "after_create_session"
    BEFORE_CLOSE_SESSION = "before_close_session"
    AFTER_CLOSE_SESSION = "after_close_session"
    BEFORE_DELETE_SESSION = "before_delete_session"
    AFTER_DELETE_SESSION = "after_delete_session"
    BEFORE_CREATE_NODE = "before_create_node"
    AFTER_CREATE_NODE = "after_create_node"
    BEFORE_UPDATE_NODE = "before_update_node"
    AFTER_UPDATE_NODE = "after_update_node"
    BEFORE_DELETE_NODE = "before_delete_node"
    AFTER_DELETE_NODE = "after_delete_node"
    BEFORE_CREATE_EDGE = "before_create_edge"
    AFTER_CREATE_EDGE = "after_create_edge"
    BEFORE_DELETE_EDGE = "before_delete_edge"
    AFTER_DELETE_EDGE = "after_delete_edge"
    BEFORE_INSTANTIATE_TEMPLATE = "before_instantiate_template"
    AFTER_INSTANTIATE_TEMPLATE = "after_instantiate_template"
    BEFORE_QUERY = "before_query"
    AFTER_QUERY = "after_query"
    BEFORE_ARCHIVE = "before_archive"
    AFTER_ARCHIVE = "after_archive"

    @property
    def is_before(self) -> bool:
        return self.value.startswith("before_")


def compile_re2(pattern: str) -> Any:
    import re2  # type: ignore[import-untyped]

    options = re2.Options()
    options.log_errors = False
    try:
        return re2.compile(pattern, options)
    except re2.error as exc:
        reason = exc.args[0].decode() if exc.args and isinstance(exc.args[0], bytes) else exc
        raise ValueError(f"{pattern!r} is not a valid RE2 pattern: {reason}") from None


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ValidatorConfig(_Strict):
    max_content_length: int | None = Field(default=None, ge=1)
    # The whole content must match one allow pattern (when any is given) and no deny pattern.
    allow_patterns: list[str] = []
    deny_patterns: list[str] = []
    required_metadata: list[str] = []
    allowed_models: list[str] = []

    @field_validator("allow_patterns", "deny_patterns")
    @classmethod
    def _compiles(cls, patterns: list[str]) -> list[str]:
        for pattern in patterns:
            compile_re2(pattern)
        return patterns


PiiKind = Literal["email", "phone", "card", "api_key"]


class RedactorConfig(_Strict):
    patterns: list[PiiKind] = ["email", "phone", "card", "api_key"]
    # mask: replace with `replacement`; hash: replace with a stable digest of the value, so equal
    # values stay joinable without being readable.
    mode: Literal["mask", "hash"] = "mask"
    replacement: str = "[redacted]"
    redact_metadata: bool = True
    # The other texts of a session or node: user and agent ids, model, role, finish reason,
    # a tool's name, arguments and result, an agent's name, description and capabilities.
    redact_texts: bool = True


class EnricherConfig(_Strict):
    prefix: str = "mg."
    fields: list[Literal["content_sha256", "chars", "approx_tokens"]] = [
        "content_sha256",
        "chars",
        "approx_tokens",
    ]


class QuotaConfig(_Strict):
    max_nodes_per_session: int | None = Field(default=None, ge=1)
    max_writes_per_minute: int | None = Field(default=None, ge=1)

    @model_validator(mode="after")
    def _some_limit(self) -> QuotaConfig:
        if self.max_nodes_per_session is None and self.max_writes_per_minute is None:
            raise ValueError("set max_nodes_per_session and/or max_writes_per_minute")
        return self


class WebhookConfig(_Strict):
    url: str = Field(pattern=r"^https?://")
    # PEM text of the CA to trust for https URLs (the system CAs when empty).
    ca_bundle: str | None = None
    # File holding the bearer token (mounted from a Secret); re-read when it changes.
    token_file: Path | None = None


CONFIG_MODELS: dict[str, type[BaseModel]] = {
    "validator": ValidatorConfig,
    "redactor": RedactorConfig,
    "enricher": EnricherConfig,
    "quota": QuotaConfig,
    "webhook": WebhookConfig,
}
# Where each type acts when `hooks` is not given.
DEFAULT_HOOKS: dict[str, list[Hook]] = {
    "validator": [Hook.BEFORE_CREATE_NODE, Hook.BEFORE_UPDATE_NODE],
    "redactor": [Hook.BEFORE_CREATE_SESSION, Hook.BEFORE_CREATE_NODE, Hook.BEFORE_UPDATE_NODE],
    "enricher": [Hook.BEFORE_CREATE_NODE, Hook.BEFORE_UPDATE_NODE],
    "quota": [Hook.BEFORE_CREATE_NODE],
    "webhook": [],
}


class PluginSpec(_Strict):
    name: str = Field(min_length=1, max_length=253)
    type: Literal["validator", "redactor", "enricher", "quota", "webhook"]
    enabled: bool = True
    order: int = 100
    timeout_seconds: float = Field(default=1.0, gt=0, le=60)
    failure_policy: Literal["Fail", "Ignore"] = "Fail"
    hooks: list[Hook] = []
    config: dict[str, Any] = {}

    @model_validator(mode="after")
    def _typed_config(self) -> PluginSpec:
        CONFIG_MODELS[self.type].model_validate(self.config)
        if not self.hooks and not DEFAULT_HOOKS[self.type]:
            raise ValueError(f"a {self.type} plugin needs a list of hooks")
        return self

    @property
    def effective_hooks(self) -> list[Hook]:
        return self.hooks or DEFAULT_HOOKS[self.type]

    def typed_config(self) -> Any:
        return CONFIG_MODELS[self.type].model_validate(self.config)


class PluginsFile(_Strict):
    version: Literal[1] = 1
    plugins: list[PluginSpec] = []

    @model_validator(mode="after")
    def _unique_names(self) -> PluginsFile:
        names = [p.name for p in self.plugins]
        twice = sorted({n for n in names if names.count(n) > 1})
        if twice:
            raise ValueError(f"plugin names must be unique: {', '.join(twice)}")
        return self
