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

The operator renders this file from Plugin resources. Everything is validated up front against
the models of `plugins.schema`, RE2 patterns included, and webhooks against the server's
`WebhookPolicy` (a token only from the plugin's own Secret; no URL the address policy refuses
already), so a bad file is refused whole with a message naming the field or the plugin.
"""

from __future__ import annotations

from pathlib import Path

import yaml
from pydantic import ValidationError

from memorygraph.config import describe_problems
from memorygraph.errors import ConfigError
from memorygraph.plugins.outbound import DEFAULT_POLICY, WebhookPolicy, url_refusal
from memorygraph.plugins.schema import PluginsFile, WebhookConfig
from memorygraph.plugins.tokens import own_token_path

__all__ = ["check_webhooks", "load_plugins_file", "parse_plugins"]


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


def check_webhooks(
    plugins: PluginsFile, policy: WebhookPolicy, source: str = "plugins file"
) -> None:
    """Refuse a webhook whose token is not its own Secret's or whose URL the address policy
    refuses (when its name resolves now; every connection is checked again)."""
    for spec in plugins.plugins:
        if spec.type != "webhook":
            continue
        config: WebhookConfig = spec.typed_config()
        where = f"{source}: plugin {spec.name!r}"
        if config.token_file is not None:
            try:
                own_token_path(policy.secrets_dir, spec.name, config.token_file)
            except ValueError as exc:
                raise ConfigError(f"{where}: {exc}") from None
        try:
            refusal = url_refusal(config.url, policy.addresses)
        except ValueError as exc:
            raise ConfigError(f"{where}: {exc}") from None
        if refusal is not None:
            raise ConfigError(
                f"{where}: its URL is refused: {refusal} (webhooks reach such addresses only "
                "when plugins_allowed_networks allows them)"
            )


def load_plugins_file(path: Path, policy: WebhookPolicy | None = None) -> PluginsFile:
    """Read and validate a plugins file, webhooks against `policy` (default: the defaults)."""
    try:
        text = path.read_text()
    except OSError as exc:
        raise ConfigError(f"cannot read plugins file {path}: {exc.strerror}") from exc
    plugins = parse_plugins(text, str(path))
    check_webhooks(plugins, policy or DEFAULT_POLICY, str(path))
    return plugins
