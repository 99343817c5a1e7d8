"""The StatefulSet running the data plane: one pod and one PersistentVolumeClaim per replica.

The pod template must be a pure function of the spec (plus the config hash and the restart
token): anything else, such as the operator's version or the time, would restart every pod
whenever the operator is upgraded.
"""

from __future__ import annotations

from typing import Any

from memorygraph_operator.api.base import GROUP
from memorygraph_operator.render.config import (
    AUTH_DIR,
    PEER_DIR,
    PLUGIN_SECRETS_DIR,
    REGISTRY_DIR,
    SHARD_MAP_DIR,
    TLS_DIR,
    config_hash,
)
from memorygraph_operator.render.context import GraphInputs, RenderEnv
from memorygraph_operator.render.image import (
    CONFIG_DIR,
    DATA_MOUNT,
    GRPC_PORT,
    METRICS_PORT,
    PEER_PORT,
    container_security_context,
    pod_security_context,
)
from memorygraph_operator.render.metadata import (
    ANNOTATION_CONFIG_HASH,
    ANNOTATION_RESTARTED_AT,
    object_meta,
    selector_labels,
)
from memorygraph_operator.render.names import Names
from memorygraph_operator.render.secrets import API_KEYS_KEY, PEER_KEY, auth_secret_name
from memorygraph_operator.render.shardmap import SHARD_MAP_KEY

__all__ = [
    "ANNOTATION_SHARD_MAP",
    "CONTAINER_NAME",
    "DATA_VOLUME",
    "render_statefulset",
    "statefulset_replicas",
]

# On a StatefulSet whose pods serve the shards of a shard map: the map's ConfigMap.
ANNOTATION_SHARD_MAP = f"{GROUP}/shard-map"

CONTAINER_NAME = "memorygraph"
DATA_VOLUME = "data"


def _rel(directory: str, file: str) -> str:
    """Path inside the config volume of a file the server config names absolutely."""
    return f"{directory.removeprefix(CONFIG_DIR + '/')}/{file}"


def _projected_config(g: GraphInputs) -> dict[str, Any]:
    """One projected volume for the config and every secret the server reads.

    Nesting secret volumes inside a ConfigMap mount point is fragile (read-only mount points),
    so everything under /etc/memorygraph comes from one projected volume.
    """
    spec = g.spec
    names = Names(g.name)
    sources: list[dict[str, Any]] = [{"configMap": {"name": names.configmap}}]
    auth_secret = auth_secret_name(g)
    if auth_secret is not None:
        sources.append(
            {
                "secret": {
                    "name": auth_secret,
                    "items": [{"key": API_KEYS_KEY, "path": _rel(AUTH_DIR, "api-keys")}],
                }
            }
        )
    if g.shard_map is not None:
        sources.append(
            {
                "configMap": {
                    "name": names.shard_map,
                    "items": [{"key": SHARD_MAP_KEY, "path": _rel(SHARD_MAP_DIR, "map.json")}],
                }
            }
        )
        sources.append(
            {
                "secret": {
                    "name": names.peer_secret,
                    "items": [{"key": PEER_KEY, "path": _rel(PEER_DIR, "key")}],
                }
            }
        )
    if spec.tls is not None:
        items = [
            {"key": "tls.crt", "path": _rel(TLS_DIR, "tls.crt")},
            {"key": "tls.key", "path": _rel(TLS_DIR, "tls.key")},
        ]
        if spec.tls.require_client_certificate:
            items.append({"key": "ca.crt", "path": _rel(TLS_DIR, "ca.crt")})
        sources.append({"secret": {"name": spec.tls.secret_ref.name, "items": items}})
    if spec.registry is not None and spec.registry.secret_ref is not None:
        ref = spec.registry.secret_ref
        sources.append(
            {
                "secret": {
                    "name": ref.name,
                    "items": [{"key": ref.key, "path": _rel(REGISTRY_DIR, "token")}],
                }
            }
        )
    for p in sorted(g.plugins, key=lambda p: p.name):
        hook = p.spec.webhook
        if hook is not None and hook.token_secret_ref is not None:
            path = _rel(PLUGIN_SECRETS_DIR, f"{p.name}/token")
            ref = hook.token_secret_ref
            sources.append(
                {"secret": {"name": ref.name, "items": [{"key": ref.key, "path": path}]}}
            )
    return {"name": "config", "projected": {"sources": sources, "defaultMode": 0o440}}


def _probes(g: GraphInputs) -> dict[str, Any]:
    # The kubelet's gRPC probe cannot speak TLS, so with TLS on liveness uses /healthz instead.
    def alive() -> dict[str, Any]:
        if g.spec.tls is not None:
            return {"httpGet": {"path": "/healthz", "port": "metrics"}}
        return {"grpc": {"port": GRPC_PORT}}

    return {
        # RocksDB may replay a long write-ahead log after a crash: up to 10 minutes to start.
        "startupProbe": {
            **alive(),
            "periodSeconds": 10,
            "failureThreshold": 60,
            "timeoutSeconds": 5,
        },
        "livenessProbe": {
            **alive(),
            "periodSeconds": 10,
            "failureThreshold": 3,
            "timeoutSeconds": 5,
        },
        "readinessProbe": {
            "httpGet": {"path": "/readyz", "port": "metrics"},
            "periodSeconds": 5,
            "failureThreshold": 3,
            "timeoutSeconds": 3,
        },
    }


def _container(g: GraphInputs, env: RenderEnv) -> dict[str, Any]:
    spec = g.spec
    container: dict[str, Any] = {
        "name": CONTAINER_NAME,
        "image": g.image_in(env),
        "command": ["memorygraph", "serve", "--config", f"{CONFIG_DIR}/memorygraph.yaml"],
        "ports": [
            {"name": "grpc", "containerPort": GRPC_PORT, "protocol": "TCP"},
            {"name": "metrics", "containerPort": METRICS_PORT, "protocol": "TCP"},
            *(
                [{"name": "peer", "containerPort": PEER_PORT, "protocol": "TCP"}]
                if g.shard_map is not None
                else []
            ),
        ],
        "env": [
            {
                "name": "MEMORYGRAPH_POD_NAME",
                "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}},
            },
            # One process per pod, whatever the node's CPUs: the probes, the metrics port and
            # the Services are one process's, and the operator does not place shards on the
            # workers of a pod. An environment variable rather than a config key: data-plane
            # images older than the setting ignore it (a graph may pin one with spec.image).
            {"name": "MEMORYGRAPH_WORKERS", "value": "1"},
        ],
        **_probes(g),
        "securityContext": container_security_context(),
        "volumeMounts": [
            {"name": DATA_VOLUME, "mountPath": DATA_MOUNT},
            {"name": "config", "mountPath": CONFIG_DIR, "readOnly": True},
            {"name": "tmp", "mountPath": "/tmp"},
        ],
    }
    if spec.image_pull_policy:
        container["imagePullPolicy"] = spec.image_pull_policy
    if spec.resources is not None:
        container["resources"] = spec.resources.wire()
    return container


def _pod_spec(g: GraphInputs, env: RenderEnv) -> dict[str, Any]:
    tpl = g.spec.pod_template
    pod: dict[str, Any] = {
        "automountServiceAccountToken": False,
        "enableServiceLinks": False,
        "terminationGracePeriodSeconds": 60,
        "securityContext": pod_security_context(),
        "containers": [_container(g, env)],
        "volumes": [_projected_config(g), {"name": "tmp", "emptyDir": {"sizeLimit": "256Mi"}}],
    }
    if tpl is not None:
        optional = {
            "nodeSelector": tpl.node_selector,
            "affinity": tpl.affinity,
            "tolerations": tpl.tolerations,
            "topologySpreadConstraints": tpl.topology_spread_constraints,
            "priorityClassName": tpl.priority_class_name,
            "serviceAccountName": tpl.service_account_name,
            "imagePullSecrets": [s.wire() for s in tpl.image_pull_secrets]
            if tpl.image_pull_secrets
            else None,
        }
        pod.update({k: v for k, v in optional.items() if v})
    return pod


def _volume_claim(g: GraphInputs) -> dict[str, Any]:
    storage = g.spec.storage
    spec: dict[str, Any] = {
        "accessModes": ["ReadWriteOnce"],
        "resources": {"requests": {"storage": storage.size}},
    }
    if storage.storage_class_name:
        spec["storageClassName"] = storage.storage_class_name
    return {
        "apiVersion": "v1",
        "kind": "PersistentVolumeClaim",
        "metadata": {"name": DATA_VOLUME, "labels": selector_labels(g)},
        "spec": spec,
    }


def statefulset_replicas(g: GraphInputs) -> int:
    """The graph's replicas, or, when its shard map holds it at more pods (a scale-in that
    waits for shards to leave them), the map's pods."""
    if g.shard_map is None or g.spec.replicas == 0:
        return g.spec.replicas
    return g.shard_map.members


def render_statefulset(g: GraphInputs, env: RenderEnv) -> dict[str, Any]:
    """The data plane's StatefulSet, with the graph's ``replicas`` (an HPA sets the graph's)."""
    tpl = g.spec.pod_template
    pod_annotations = dict(tpl.annotations or {}) if tpl else {}
    pod_annotations[ANNOTATION_CONFIG_HASH] = config_hash(g)
    pod_annotations["kubectl.kubernetes.io/default-container"] = CONTAINER_NAME
    if g.restarted_at:
        pod_annotations[ANNOTATION_RESTARTED_AT] = g.restarted_at
    user_labels = dict(tpl.labels or {}) if tpl else {}
    policy = g.spec.storage.deletion_policy
    # Scaled to zero, a graph with a map stops pods that own shards: their volumes stay,
    # whatever the policy, and the shards come back with the pods.
    when_scaled = "Retain" if g.shard_map is not None and g.spec.replicas == 0 else policy
    spec: dict[str, Any] = {
        "serviceName": Names(g.name).headless_service,
        "selector": {"matchLabels": selector_labels(g)},
        # Every pod holds an independent RocksDB: no reason to start them one by one.
        "podManagementPolicy": "Parallel",
        "updateStrategy": {"type": "RollingUpdate"},
        "persistentVolumeClaimRetentionPolicy": {"whenDeleted": policy, "whenScaled": when_scaled},
        "template": {
            "metadata": {
                "labels": {**user_labels, **object_meta(g, "", "data-plane")["labels"]},
                "annotations": pod_annotations,
            },
            "spec": _pod_spec(g, env),
        },
        "volumeClaimTemplates": [_volume_claim(g)],
    }
    spec = {"replicas": statefulset_replicas(g), **spec}
    marked = {ANNOTATION_SHARD_MAP: Names(g.name).shard_map} if g.shard_map is not None else None
    return {
        "apiVersion": "apps/v1",
        "kind": "StatefulSet",
        "metadata": object_meta(g, Names(g.name).statefulset, "data-plane", annotations=marked),
        "spec": spec,
    }
