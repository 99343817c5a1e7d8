"""Server configuration: defaults < config file < ``MEMORYGRAPH_*`` environment < command line.

The config file is YAML with snake_case keys (the operator renders it into a ConfigMap as
``memorygraph.yaml``). This module only reads and validates; it never starts anything.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Mapping
from enum import StrEnum
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    IPvAnyNetwork,
    ValidationError,
    field_validator,
    model_validator,
)

from memorygraph.errors import ConfigError, InvalidArgument
from memorygraph.store.shards import check_shard_count

MAX_WORKERS = 64

__all__ = [
    "ClusterConfig",
    "Durability",
    "PeerTLSConfig",
    "ServerConfig",
    "cluster_member",
    "describe_problems",
    "load_config",
    "usable_cpus",
]

CGROUP_CPU_MAX = Path("/sys/fs/cgroup/cpu.max")


def usable_cpus(cpu_max: Path = CGROUP_CPU_MAX) -> int:
    """The CPUs this process may use: those it may run on, fewer when its cgroup's CPU quota
    (a container's CPU limit, cgroup v2 `cpu.max`) allows less; at least 1, at most
    MAX_WORKERS. (`os.cpu_count()` counts the machine's, whatever the container may use.)"""
    count = len(os.sched_getaffinity(0))
    try:
        quota, period = cpu_max.read_text().split()[:2]
        if quota != "max":
            count = min(count, -(-int(quota) // int(period)))  # a part of a CPU counts as one
    except (OSError, ValueError):
        pass  # no cgroup v2 limit to read
    return max(1, min(count, MAX_WORKERS))


ENV_PREFIX = "MEMORYGRAPH_"


class Durability(StrEnum):
    """How far a write has gone before the RPC that made it is acknowledged."""

    DURABLE = "durable"  # fsynced to the write-ahead log
    FAST = "fast"  # in the write-ahead log, not fsynced: survives a process crash, not power loss


class AuthConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")
    enabled: bool = False
    # One key per line; re-read when it changes. MEMORYGRAPH_API_KEYS (comma-separated) adds keys.
    api_keys_file: Path | None = None
    # Let probes and tooling in without a key.
    open_health: bool = True
    open_reflection: bool = True


class TLSConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")
    cert_file: Path | None = None
    key_file: Path | None = None
    client_ca_file: Path | None = None


class PeerTLSConfig(BaseModel):
    """Mutual TLS between the members of a graph: each presents its certificate and takes only
    peers whose certificate `ca_file` signed."""

    model_config = ConfigDict(extra="forbid")
    cert_file: Path
    key_file: Path
    ca_file: Path


class ClusterConfig(BaseModel):
    """This server as one member of a graph served by several pods (off without `map_file`):
    it serves the shards the map gives it from its own volume, and reaches the other members
    on their peer ports."""

    model_config = ConfigDict(extra="forbid")
    # The graph's shard map (`store.cluster`), written by the operator.
    map_file: Path | None = None
    # Which member this is; None: the ordinal of the pod's name (MEMORYGRAPH_POD_NAME, else the
    # host name), as in mg-2.
    member: int | None = Field(default=None, ge=0, lt=MAX_WORKERS)
    # Where the other members call this one (forwarded calls, their parts of writes).
    peer_port: int = Field(default=50052, ge=1, le=65535)
    # The key members present to each other's peer ports (one per line, the first presented;
    # every line taken, so that the key rotates).
    peer_key_file: Path | None = None
    peer_tls: PeerTLSConfig | None = None


class RegistryConfig(BaseModel):
    """The LLM-Registry that receives session and token-usage reports (off without a url)."""

    model_config = ConfigDict(extra="forbid")
    url: str | None = Field(default=None, pattern=r"^https?://")
    token_file: Path | None = None
    timeout_seconds: float = Field(default=5.0, gt=0)
    # Consecutive failed deliveries that open the circuit breaker, and how long it stays open.
    breaker_threshold: int = Field(default=5, ge=1)
    breaker_cooldown_seconds: float = Field(default=30.0, gt=0)


class ServerConfig(BaseModel):
    """Everything `memorygraph serve` needs. Field names are the config-file keys."""

    model_config = ConfigDict(extra="forbid")

    data_dir: Path = Path("./data")
    host: str = "0.0.0.0"
    port: int = Field(default=50051, ge=0, le=65535)
    metrics_port: int = Field(default=9090, ge=0, le=65535)
    durability: Durability = Durability.DURABLE
    # How many shards the data is split into: fixed when the data directory is made (None:
    # the directory's own number, DEFAULT_SHARDS for a new one); another number is refused.
    shards: int | None = None
    # Worker processes serving the data directory, each owning a share of the shards with a
    # store of its own (1: this process serves every shard). Fixed when the directory is made.
    # Worker i also listens on port + 1 + i, and serves metrics on metrics_port + 1 + i.
    # None: the directory's own number, and for a new directory the CPUs this process may use
    # (`usable_cpus`), worked out by `memorygraph serve` before it starts.
    workers: int | None = Field(default=None, ge=1, le=MAX_WORKERS)
    # Keep each server process on one CPU of those it may run on, worker i on the i-th (see
    # `affinity`): only where those CPUs are its own.
    pin_cpus: bool = False
    log_level: Literal["debug", "info", "warning", "error"] = "info"
    log_format: Literal["text", "json"] = "text"
    # Seconds in-flight RPCs get to finish on SIGTERM / Ctrl-C before they are cancelled.
    shutdown_grace_seconds: float = Field(default=10.0, ge=0)
    # Most threads running unary reads, and most running every other call (up to twice this
    # in all); long-lived streams hold one each, so keep it above max_streams.
    max_workers: int = Field(default=64, ge=2)
    # Threads taking unary reads as they come; a spare (up to max_workers threads) stands in
    # for each held on one read for 20 ms (see `servicers.pools`). At most max_workers; the
    # default gives way to a smaller max_workers.
    core_workers: int = Field(default=4, ge=1)
    # Calls beyond this many at once are refused with RESOURCE_EXHAUSTED instead of queueing.
    max_concurrent_rpcs: int = Field(default=256, ge=1)
    # Open StreamEvents / SubscribeToSession / Ingest / health Watch streams at once.
    max_streams: int = Field(default=32, ge=1)
    # Streams open at once of the methods open without a key (reflection), auth on.
    max_open_streams: int = Field(default=4, ge=0)
    # Largest request or response message.
    max_message_bytes: int = Field(default=8 << 20, ge=1024)
    max_content_bytes: int = Field(default=1 << 20, ge=1)
    max_metadata_bytes: int = Field(default=16 << 10, ge=1)
    # Every other text of a node or session: names (model, role, user and agent ids, finish
    # reason, tool, agent, template and variable names, each capability) and descriptions (an
    # agent's; a template variable's description, default value and pattern).
    max_name_bytes: int = Field(default=1 << 10, ge=1)
    max_text_bytes: int = Field(default=64 << 10, ge=1)
    # Capabilities of one agent, variables of one template.
    max_list_items: int = Field(default=256, ge=1)
    # Each token count of one response (prompt + completion must fit a 64-bit total).
    max_response_tokens: int = Field(default=1 << 32, ge=1, le=1 << 62)
    # Deadline for calls that come without one (long-lived streams excepted).
    default_deadline_seconds: float = Field(default=30.0, gt=0)
    # Events are kept this long and at most this many (the newest); streams resume within them.
    event_retention_seconds: float = Field(default=7 * 24 * 3600, gt=0)
    event_retention_max_events: int = Field(default=10_000_000, ge=1)
    # Events buffered per subscriber before a slow one is ended with RESOURCE_EXHAUSTED: at
    # most this many, and at most this many bytes of them.
    event_buffer_size: int = Field(default=1024, ge=1)
    event_buffer_bytes: int = Field(default=8 << 20, ge=1024)
    # A long-lived stream whose client takes no message for this long is ended.
    stream_write_timeout_seconds: float = Field(default=30.0, gt=0)
    # RestoreSession calls at once, and the export bytes all of them may hold together (also
    # the largest export one restore takes).
    max_restores: int = Field(default=2, ge=1)
    restore_budget_bytes: int = Field(default=256 << 20, ge=1 << 20)
    # Bytes of webhook after-hook calls waiting for delivery.
    plugin_after_queue_bytes: int = Field(default=64 << 20, ge=1 << 20)
    auth: AuthConfig = AuthConfig()
    tls: TLSConfig = TLSConfig()
    registry: RegistryConfig = RegistryConfig()
    cluster: ClusterConfig = ClusterConfig()
    plugins_file: Path | None = None
    # A webhook plugin's token_file must lie in <plugin_secrets_dir>/<plugin name>/, where the
    # operator mounts the plugin's own Secret.
    plugin_secrets_dir: Path = Path("/etc/memorygraph/plugin-secrets")
    # Webhooks never reach loopback, link-local, cloud-metadata or unspecified addresses,
    # except those inside these networks (a metadata address only by a network of itself).
    plugins_allowed_networks: list[IPvAnyNetwork] = []
    # Largest webhook answer read; room for a patch of a full-size content.
    plugins_max_answer_bytes: int = Field(default=2 << 20, ge=1024)

    @field_validator("shards")
    @classmethod
    def _shards_power_of_two(cls, value: int | None) -> int | None:
        if value is None:
            return None
        try:
            return check_shard_count(value)
        except InvalidArgument as exc:
            raise ValueError(str(exc)) from None

    @property
    def worker_count(self) -> int:
        """`workers`, where a number is needed (None counts as one process)."""
        return self.workers or 1

    @model_validator(mode="after")
    def _workers_have_addresses(self) -> ServerConfig:
        workers = self.worker_count
        if workers > 1 and (self.port == 0 or self.port + workers > 65535):
            raise ValueError(
                f"with {workers} workers, port must be a fixed port below {65536 - workers} "
                "(worker i also listens on port + 1 + i), or start with --workers 1"
            )
        return self

    @model_validator(mode="after")
    def _cluster_has_what_members_need(self) -> ServerConfig:
        cluster = self.cluster
        if cluster.map_file is None:
            if cluster.peer_key_file is not None or cluster.peer_tls is not None:
                raise ValueError(
                    "cluster.peer_key_file and cluster.peer_tls need cluster.map_file (they are "
                    "how the members of a graph served by several pods reach each other)"
                )
            return self
        if self.worker_count > 1:
            raise ValueError(
                "a member of a graph served by several pods runs one worker: start it with "
                "--workers 1 (or leave cluster.map_file out)"
            )
        if cluster.peer_key_file is None:
            raise ValueError(
                "cluster.peer_key_file is required: the members' peer ports take only that key"
            )
        if cluster.peer_port in (self.port, self.metrics_port):
            raise ValueError("cluster.peer_port must differ from port and metrics_port")
        return self

    @model_validator(mode="after")
    def _core_within_workers(self) -> ServerConfig:
        if self.core_workers <= self.max_workers:
            return self
        if "core_workers" in self.model_fields_set:  # a number asked for does not give way
            raise ValueError(
                f"core_workers ({self.core_workers}) must not be above max_workers "
                f"({self.max_workers})"
            )
        self.core_workers = self.max_workers
        return self

    @model_validator(mode="after")
    def _streams_leave_workers_free(self) -> ServerConfig:
        if self.max_streams + self.max_open_streams >= self.max_workers:
            raise ValueError(
                f"max_streams + max_open_streams ({self.max_streams} + {self.max_open_streams}) "
                f"must be below max_workers ({self.max_workers}): every open stream holds a "
                "worker thread"
            )
        return self


# Scalar settings that may also come from the environment, e.g. MEMORYGRAPH_DATA_DIR.
ENV_KEYS = (
    "data_dir",
    "host",
    "port",
    "metrics_port",
    "durability",
    "shards",
    "workers",
    "pin_cpus",
    "log_level",
    "shutdown_grace_seconds",
    "max_workers",
    "core_workers",
    "max_concurrent_rpcs",
    "max_streams",
    "max_open_streams",
    "max_message_bytes",
    "max_content_bytes",
    "max_metadata_bytes",
    "max_name_bytes",
    "max_text_bytes",
    "max_list_items",
    "max_response_tokens",
    "default_deadline_seconds",
    "log_format",
    "event_retention_seconds",
    "event_retention_max_events",
    "event_buffer_size",
    "event_buffer_bytes",
    "stream_write_timeout_seconds",
    "max_restores",
    "restore_budget_bytes",
    "plugin_after_queue_bytes",
    "plugins_file",
    "plugin_secrets_dir",
    "plugins_max_answer_bytes",
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
        raise ConfigError(f"invalid configuration: {describe_problems(exc)}") from exc


def cluster_member(config: ServerConfig, environ: Mapping[str, str] | None = None) -> int:
    """This server's member index in its graph: `cluster.member`, else the ordinal that ends
    the pod's name (MEMORYGRAPH_POD_NAME, else the host name), as a StatefulSet names pods."""
    if config.cluster.member is not None:
        return config.cluster.member
    environ = os.environ if environ is None else environ
    name = environ.get(f"{ENV_PREFIX}POD_NAME") or socket.gethostname()
    _, _, ordinal = name.rpartition("-")
    if not ordinal.isdigit() or int(ordinal) >= MAX_WORKERS:
        raise ConfigError(
            f"cannot tell which member of the graph this is: pod name {name!r} does not end in "
            "its ordinal (set cluster.member)"
        )
    return int(ordinal)


def describe_problems(exc: ValidationError) -> str:
    """Every validation problem as `dotted.field: message`, for one-line error messages."""
    return "; ".join(
        f"{'.'.join(str(p) for p in err['loc']) or 'file'}: {err['msg']}" for err in exc.errors()
    )
