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
the models of `plugins.schema`, RE2 patterns included, so a bad file is refused whole with a
message naming the field.
"""

from __future__ import annotations

from pathlib import Path

import yaml
from pydantic import ValidationError

from memorygraph.config import describe_problems
from memorygraph.errors import ConfigError
from memorygraph.plugins.schema import PluginsFile

__all__ = ["load_plugins_file", "parse_plugins"]


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
