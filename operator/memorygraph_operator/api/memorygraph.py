"""The ``MemoryGraph`` custom resource: one data plane (StatefulSet and its companions).

Field docs become the CRD's descriptions and the API reference, so they are written for users.
Validation that the API server enforces with CEL is mirrored by pydantic validators where it
does not need the old object, so the operator reports the same error for objects that slipped
past (e.g. created before the CRD was upgraded).
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, model_validator

from memorygraph_operator.api.archival import DURATION_PATTERN, ArchivalSpec, ArchivalStatus
from memorygraph_operator.api.base import (
    KubeModel,
    LabelSelector,
    Quantity,
    SecretKeyRef,
    SecretRef,
    cel,
    int_or_string,
    preserve_unknown,
)
from memorygraph_operator.api.conditions import Condition

__all__ = [
    "ARCHIVAL_WITHOUT_CLIENT_CERTIFICATE",
    "DEFAULT_SHARDS",
    "EXPOSED_SERVICE_TYPES",
    "EXPOSED_WITHOUT_AUTH",
    "ArchivalStatus",
    "AuthSpec",
    "AutoscalingSpec",
    "Endpoints",
    "MemoryGraph",
    "MemoryGraphSpec",
    "MemoryGraphStatus",
    "MonitoringSpec",
    "NetworkPolicySpec",
    "PluginSelection",
    "PodDisruptionBudgetSpec",
    "PodTemplateSpec",
    "RegistrySpec",
    "ResourceRequirements",
    "ServiceMonitorSpec",
    "ServiceSpec",
    "StorageSpec",
    "TLSSpec",
]

ShardCount = Literal[1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 2048, 4096]
DEFAULT_SHARDS: ShardCount = 64  # the data plane's own default for a new data directory

ARCHIVAL_WITHOUT_CLIENT_CERTIFICATE = (
    "with tls.requireClientCertificate, archival needs archival.clientCertificateSecretRef: "
    "a client certificate of the archival job's own"
)
EXPOSED_WITHOUT_AUTH = (
    "service.type NodePort or LoadBalancer exposes the graph outside the cluster and needs "
    "auth.enabled: true"
)


class ResourceRequirements(KubeModel):
    """CPU and memory requests and limits of the data-plane container."""

    requests: dict[str, Quantity] | None = Field(default=None, description="Minimum resources.")
    limits: dict[str, Quantity] | None = Field(default=None, description="Maximum resources.")


class StorageSpec(KubeModel):
    """The persistent volume of each pod, holding its RocksDB."""

    model_config = KubeModel.model_config | {
        "json_schema_extra": cel(
            (
                "quantity(self.size).compareTo(quantity(oldSelf.size)) >= 0",
                "storage.size cannot shrink",
            ),
            (
                "has(self.storageClassName) == has(oldSelf.storageClassName) && "
                "(!has(self.storageClassName) || "
                "self.storageClassName == oldSelf.storageClassName)",
                "storage.storageClassName is immutable",
            ),
        )
    }

    size: Quantity = Field(
        default="10Gi", max_length=32, description="Requested size of each pod's volume."
    )
    storage_class_name: str | None = Field(
        default=None,
        max_length=253,
        description="StorageClass of the volumes; the cluster default when unset.",
    )
    deletion_policy: Literal["Retain", "Delete"] = Field(
        default="Retain",
        description=(
            "What happens to the volumes when the MemoryGraph is deleted or scaled in: "
            "Retain keeps them (the data survives), Delete removes them."
        ),
    )


class AutoscalingSpec(KubeModel):
    """A HorizontalPodAutoscaler on the StatefulSet; it then owns the replica count."""

    model_config = KubeModel.model_config | {
        "json_schema_extra": cel(
            ("self.minReplicas <= self.maxReplicas", "minReplicas must not exceed maxReplicas")
        )
    }

    enabled: bool = Field(default=False, description="Create the HorizontalPodAutoscaler.")
    min_replicas: int = Field(default=1, ge=1, description="Lower bound of the replica count.")
    max_replicas: int = Field(default=3, ge=1, description="Upper bound of the replica count.")
    target_cpu_utilization_percentage: int | None = Field(
        default=80,
        ge=1,
        le=100,
        alias="targetCPUUtilizationPercentage",
        description="Average CPU utilisation to aim for.",
    )
    metrics: list[dict[str, Any]] | None = Field(
        default=None,
        description="Extra autoscaling/v2 MetricSpec entries, passed through unchanged.",
        json_schema_extra={"items": preserve_unknown()},
    )

    @model_validator(mode="after")
    def _bounds(self) -> AutoscalingSpec:
        if self.min_replicas > self.max_replicas:
            raise ValueError("minReplicas must not exceed maxReplicas")
        return self


class PluginSelection(KubeModel):
    """Which Plugin resources (in the graph's namespace) configure this graph."""

    names: list[str] | None = Field(default=None, description="Plugins selected by name.")
    selector: LabelSelector | None = Field(
        default=None, description="Plugins selected by label; combined with names."
    )


class RegistrySpec(KubeModel):
    """The LLM-Registry the data plane reports sessions and token usage to."""

    url: str = Field(pattern=r"^https?://", description="Base URL of the registry.")
    secret_ref: SecretKeyRef | None = Field(default=None, description="Registry API token.")


class AuthSpec(KubeModel):
    """API-key authentication of clients: on unless switched off."""

    enabled: bool = Field(
        default=True,
        description=(
            "Require an API key on every RPC. Switching it off is refused while the Service "
            "exposes the graph outside the cluster."
        ),
    )
    secret_ref: SecretRef | None = Field(
        default=None,
        description=(
            "Secret with key `api-keys` (one key per line) and, when archival is configured, "
            "`archival-api-key`: one of those keys, which the archival job presents. When unset, "
            "the operator generates `<name>-api-keys` once and never rotates it: `api-key` "
            "holds the key for applications, `archival-api-key` the archival job's, `api-keys` "
            "both."
        ),
    )


class TLSSpec(KubeModel):
    """TLS of the gRPC port."""

    secret_ref: SecretRef = Field(
        description=(
            "Secret with tls.crt, tls.key and optionally ca.crt (needed for mutual TLS, and by "
            "the archival job, which verifies the server against it and is given ca.crt only)."
        )
    )
    require_client_certificate: bool = Field(
        default=False, description="Verify client certificates against ca.crt (mutual TLS)."
    )


class ServiceMonitorSpec(KubeModel):
    """A Prometheus-Operator ServiceMonitor, created only when its CRD is installed."""

    enabled: bool = False
    interval: str = Field(default="30s", pattern=DURATION_PATTERN)
    labels: dict[str, str] | None = Field(
        default=None, description="Labels Prometheus selects ServiceMonitors by."
    )


class MonitoringSpec(KubeModel):
    """Metrics scraping."""

    service_monitor: ServiceMonitorSpec = Field(default_factory=ServiceMonitorSpec)
    allowed_from: list[dict[str, Any]] | None = Field(
        default=None,
        description=(
            "NetworkPolicyPeer entries the NetworkPolicy admits to the metrics port (Prometheus). "
            "Unset: the namespaces the operator's installation names for scraping, if any."
        ),
        json_schema_extra={"items": preserve_unknown()},
    )


class PodDisruptionBudgetSpec(KubeModel):
    """The PodDisruptionBudget, created only when more than one pod runs."""

    enabled: bool = True
    max_unavailable: int | str = Field(default=1, json_schema_extra=int_or_string())


class PodTemplateSpec(KubeModel):
    """Scheduling and metadata of the data-plane pods."""

    labels: dict[str, str] | None = None
    annotations: dict[str, str] | None = None
    node_selector: dict[str, str] | None = None
    affinity: dict[str, Any] | None = Field(default=None, json_schema_extra=preserve_unknown())
    tolerations: list[dict[str, Any]] | None = Field(
        default=None, json_schema_extra={"items": preserve_unknown()}
    )
    topology_spread_constraints: list[dict[str, Any]] | None = Field(
        default=None, json_schema_extra={"items": preserve_unknown()}
    )
    priority_class_name: str | None = None
    service_account_name: str | None = None
    image_pull_secrets: list[SecretRef] | None = None


# Service types that reach the graph from outside the cluster.
EXPOSED_SERVICE_TYPES = ("NodePort", "LoadBalancer")


class ServiceSpec(KubeModel):
    """The client Service in front of the pods."""

    type: Literal["ClusterIP", "NodePort", "LoadBalancer"] = Field(
        default="ClusterIP",
        description=(
            "NodePort and LoadBalancer expose the graph outside the cluster and need "
            "authentication on."
        ),
    )
    annotations: dict[str, str] | None = None


class NetworkPolicySpec(KubeModel):
    """A NetworkPolicy admitting only the graph's clients to its pods: on unless switched off."""

    enabled: bool = Field(default=True, description="Create the NetworkPolicy.")
    allowed_clients: list[dict[str, Any]] | None = Field(
        default=None,
        description=(
            "NetworkPolicyPeer entries allowed to reach the gRPC port, besides the graph's own "
            "pods and archival Job. Unset: every pod in the graph's namespace, or every source "
            "when service.type exposes the graph outside the cluster."
        ),
        json_schema_extra={"items": preserve_unknown()},
    )


class MemoryGraphSpec(KubeModel):
    """Desired state of a MemoryGraph."""

    model_config = KubeModel.model_config | {
        "json_schema_extra": cel(
            (
                "!has(self.autoscaling) || !self.autoscaling.enabled || "
                "(self.replicas >= self.autoscaling.minReplicas && "
                "self.replicas <= self.autoscaling.maxReplicas)",
                "replicas must lie within autoscaling.minReplicas and autoscaling.maxReplicas",
            ),
            (
                "!has(self.service) || !has(self.service.type) || "
                "self.service.type == 'ClusterIP' || "
                "!has(self.auth) || !has(self.auth.enabled) || self.auth.enabled",
                EXPOSED_WITHOUT_AUTH,
            ),
            (
                "!has(self.archival) || !has(self.tls) || "
                "!has(self.tls.requireClientCertificate) || !self.tls.requireClientCertificate || "
                "has(self.archival.clientCertificateSecretRef)",
                ARCHIVAL_WITHOUT_CLIENT_CERTIFICATE,
            ),
        )
    }

    replicas: int = Field(default=1, ge=0, description="Number of data-plane pods.")
    shards: ShardCount = Field(
        default=DEFAULT_SHARDS,
        description=(
            "Logical shards the graph's data is split into (a session and everything of it "
            "live on one): a power of two up to 4096, fixed when the graph is created."
        ),
        json_schema_extra=cel(("self == oldSelf", "shards cannot change once the graph exists")),
    )
    image: str | None = Field(default=None, description="Image; the operator's default when unset.")
    image_pull_policy: Literal["Always", "IfNotPresent", "Never"] | None = None
    resources: ResourceRequirements | None = None
    # A default makes the API server materialise the storage section, so the CEL rules that
    # compare with the old object also guard graphs created without one. It is written out in
    # full: the API server checks a default against the CEL rules without applying the nested
    # defaults first, and rejects the whole CRD when ``self.size`` is missing from it.
    storage: StorageSpec = Field(
        default_factory=StorageSpec,
        json_schema_extra={"default": StorageSpec().model_dump(by_alias=True, exclude_none=True)},
    )
    durability: Literal["Durable", "Fast"] = Field(
        default="Durable",
        description="Durable acknowledges writes once fsynced; Fast survives process crashes only.",
    )
    pin_cpus: bool = Field(
        default=False,
        description=(
            "Keep the data plane process on one CPU of those its container may use: its "
            "threads hand the interpreter's lock to each other several times a call, cheaper "
            "on one CPU. Only for pods given a CPU of their own (Guaranteed QoS with a CPU "
            "request and limit of 1, the pod's one process; the kubelet's static CPU manager "
            "policy): on shared CPUs, pods that each pin themselves crowd onto the same ones."
        ),
    )
    log_level: Literal["Debug", "Info", "Warning", "Error"] = "Info"
    autoscaling: AutoscalingSpec | None = None
    plugins: PluginSelection | None = None
    archival: ArchivalSpec | None = None
    registry: RegistrySpec | None = None
    auth: AuthSpec | None = Field(
        default=None,
        description="API-key authentication of clients; unset, it is on with a generated key.",
    )
    tls: TLSSpec | None = None
    monitoring: MonitoringSpec | None = None
    pod_disruption_budget: PodDisruptionBudgetSpec | None = None
    pod_template: PodTemplateSpec | None = None
    service: ServiceSpec | None = None
    network_policy: NetworkPolicySpec | None = Field(
        default=None,
        description=(
            "A NetworkPolicy admitting only the graph's clients; unset, it admits the graph's "
            "namespace to the gRPC port and the scraping namespaces to the metrics port."
        ),
    )

    @model_validator(mode="after")
    def _replicas_within_bounds(self) -> MemoryGraphSpec:
        a = self.autoscaling
        if a is not None and a.enabled and not a.min_replicas <= self.replicas <= a.max_replicas:
            raise ValueError(
                "replicas must lie within autoscaling.minReplicas and autoscaling.maxReplicas"
            )
        return self

    @model_validator(mode="after")
    def _exposed_only_with_auth(self) -> MemoryGraphSpec:
        if self.exposed and not self.auth_enabled:
            raise ValueError(EXPOSED_WITHOUT_AUTH)
        return self

    @model_validator(mode="after")
    def _archival_has_its_own_client_certificate(self) -> MemoryGraphSpec:
        mutual = self.tls is not None and self.tls.require_client_certificate
        if mutual and self.archival is not None and not self.archival.client_certificate_secret_ref:
            raise ValueError(ARCHIVAL_WITHOUT_CLIENT_CERTIFICATE)
        return self

    @property
    def autoscaled(self) -> bool:
        """Whether a HorizontalPodAutoscaler owns the replica count."""
        return self.autoscaling is not None and self.autoscaling.enabled

    @property
    def auth_enabled(self) -> bool:
        """Whether clients need an API key (unless switched off, they do)."""
        return self.auth is None or self.auth.enabled

    @property
    def exposed(self) -> bool:
        """Whether the client Service reaches the graph from outside the cluster."""
        return self.service is not None and self.service.type in EXPOSED_SERVICE_TYPES


class Endpoints(KubeModel):
    """Where clients reach the graph."""

    grpc: str = Field(description="host:port of the gRPC API inside the cluster.")
    metrics: str = Field(description="URL of the Prometheus metrics.")


class ShardsStatus(KubeModel):
    """Where the graph's shards are: how many each pod owns and the moves between pods."""

    count: int = Field(description="Shards of the graph.")
    epoch: int = Field(description="Epoch of the shard map the operator wrote last.")
    per_pod: list[int] = Field(description="Shards each pod owns, pod 0 first.")
    spread: str = Field(description="The same, as one string (`22/21/21`).")
    moves: int = Field(description="Moves of a shard between pods so far.")
    moving: str | None = Field(
        default=None, description="The move under way: the shard, its source and target pod."
    )


class MemoryGraphStatus(KubeModel):
    """Observed state of a MemoryGraph, written by the operator only."""

    observed_generation: int | None = None
    conditions: list[Condition] | None = Field(
        default=None,
        json_schema_extra={"x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["type"]},
    )
    replicas: int | None = Field(default=None, description="Pods that exist.")
    ready_replicas: int | None = Field(default=None, description="Pods that are ready.")
    selector: str | None = Field(default=None, description="Label selector of the pods (scale).")
    endpoints: Endpoints | None = None
    current_image: str | None = None
    config_hash: str | None = Field(default=None, description="Hash of the rendered server config.")
    plugins: list[str] | None = Field(default=None, description="Plugins in the rendered config.")
    archival: ArchivalStatus | None = None
    shards: ShardsStatus | None = None


class MemoryGraph(KubeModel):
    """A MemoryGraph: a persistent memory store for LLM applications, run as a StatefulSet."""

    model_config = KubeModel.model_config | {"extra": "ignore"}

    spec: MemoryGraphSpec = Field(default_factory=MemoryGraphSpec)
    status: MemoryGraphStatus | None = None
