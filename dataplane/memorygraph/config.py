"""Server configuration: defaults < config file < ``MEMORYGRAPH_*`` environment < command line.

The config file is YAML with snake_case keys (the operator renders it into a ConfigMap as
``memorygraph.yaml``). This module only reads and validates; it never starts anything.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from enum import StrEnum
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from memorygraph.errors import ConfigError

__all__ = ["Durability", "ServerConfig", "load_config"]

ENV_PREFIX = "MEMORYGRAPH_"


class Durability(StrEnum):
    """How far a write has gone before the RPC that made it is acknowledged."""

    DURABLE = "durable"  # fsynced to the write-ahead log
    FAST = "fast"  # in the write-ahead log, not fsynced: survives a process crash, not power loss


class AuthConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")
    enabled: bool = False
    api_keys_file: Path | None = None


class TLSConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")
    cert_file: Path | None = None
    key_file: Path | None = None
    client_ca_file: Path | None = None


class RegistryConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")
    url: str | None = None
    token_file: Path | None = None


class ServerConfig(BaseModel):
    """Everything `memorygraph serve` needs. Field names are the config-file keys."""

    model_config = ConfigDict(extra="forbid")

    data_dir: Path = Path("./data")
    host: str = "0.0.0.0"
    port: int = Field(default=50051, ge=0, le=65535)
    metrics_port: int = Field(default=9090, ge=0, le=65535)
    durability: Durability = Durability.DURABLE
    log_level: str = "info"
    # Seconds in-flight RPCs get to finish on SIGTERM / Ctrl-C before they are cancelled.
    shutdown_grace_seconds: float = Field(default=10.0, ge=0)
    max_workers: int = Field(default=16, ge=1)
    # Events are kept this long and at most this many (the newest); streams resume within them.
    event_retention_seconds: float = Field(default=7 * 24 * 3600, gt=0)
    event_retention_max_events: int = Field(default=10_000_000, ge=1)
    # Events buffered per subscriber before a slow one is ended with RESOURCE_EXHAUSTED.
    event_buffer_size: int = Field(default=1024, ge=1)
    auth: AuthConfig = AuthConfig()
    tls: TLSConfig = TLSConfig()
    registry: RegistryConfig = RegistryConfig()
    plugins_file: Path | None = None


# Scalar settings that may also come from the environment, e.g. MEMORYGRAPH_DATA_DIR.
ENV_KEYS = (
    "data_dir",
    "host",
    "port",
    "metrics_port",
    "durability",
    "log_level",
    "shutdown_grace_seconds",
    "max_workers",
    "event_retention_seconds",
    "event_retention_max_events",
    "event_buffer_size",
    "plugins_file",
)


def load_config(
    config_file: Path | None = None,
    overrides: Mapping[str, Any] | None = None,
    environ: Mapping[str, str] | None = None,
) -> ServerConfig:
    """Merge the layers and validate; any problem raises `ConfigError` naming its source."""
    environ = os.environ if environ is None else environ
    if config_file is None and environ.get(f"{ENV_PREFIX}CONFIG"):
        config_file = Path(environ[f"{ENV_PREFIX}CONFIG"])
    data: dict[str, Any] = {}
    if config_file is not None:
        try:
            loaded = yaml.safe_load(config_file.read_text()) or {}
        except OSError as exc:
            raise ConfigError(f"cannot read config file {config_file}: {exc.strerror}") from exc
        except yaml.YAMLError as exc:
            raise ConfigError(f"config file {config_file} is not valid YAML: {exc}") from exc
        if not isinstance(loaded, dict):
            raise ConfigError(f"config file {config_file} must hold a mapping of settings")
        data.update(loaded)
    for key in ENV_KEYS:
        value = environ.get(ENV_PREFIX + key.upper())
        if value:
            data[key] = value
    data.update({k: v for k, v in (overrides or {}).items() if v is not None})
    try:
        return ServerConfig.model_validate(data)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in err['loc']) or 'config'}: {err['msg']}"
            for err in exc.errors()
        )
        raise ConfigError(f"invalid configuration: {problems}") from exc
