"""`plugins.yaml`: which plugins run, in which order, on which hooks, with which settings.

    version: 1
    plugins:
      - name: pii-redactor          # unique
        type: redactor              # validator | redactor | enricher | quota | webhook
        enabled: true
        order: 10                   # lower runs first; ties by name
        timeout_seconds: 1
        failure_policy: Fail        # Fail: the call is refused; Ignore: the plugin is skipped
        hooks: [before_create_node]
        config: {patterns: [email, phone], mode: mask}

The operator renders this file from Plugin resources. Everything is validated up front, RE2
patterns included, so a bad file is refused whole with a message naming the field.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from memorygraph.config import describe_problems
from memorygraph.errors import ConfigError
from memorygraph.plugins.hooks import Hook

__all__ = [
    "EnricherConfig",
    "PluginSpec",
    "PluginsFile",
    "QuotaConfig",
    "RedactorConfig",
    "ValidatorConfig",
    "WebhookConfig",
    "load_plugins_file",
    "parse_plugins",
]


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
    "redactor": [Hook.BEFORE_CREATE_NODE, Hook.BEFORE_UPDATE_NODE],
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


def parse_plugins(text: str, source: str = "plugins file") -> PluginsFile:
    """Validate plugin configuration text; `ConfigError` names what is wrong and where."""
    try:
        data = yaml.safe_load(text) or {}
    except yaml.YAMLError as exc:
        raise ConfigError(f"{source} is not valid YAML: {exc}") from exc
    if not isinstance(data, dict):
        raise ConfigError(f"{source} must be a mapping with `version` and `plugins`")
    try:
        return PluginsFile.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(f"{source} is invalid: {describe_problems(exc)}") from exc


def load_plugins_file(path: Path) -> PluginsFile:
    try:
        text = path.read_text()
    except OSError as exc:
        raise ConfigError(f"cannot read plugins file {path}: {exc.strerror}") from exc
    return parse_plugins(text, str(path))
