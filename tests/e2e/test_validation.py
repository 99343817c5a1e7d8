"""Scenario 3: the real API server enforces the CRD's schema and CEL rules."""

from __future__ import annotations

import json
from typing import Any

import pytest
from e2e_support import Cluster, CommandFailed, example


def _graph(namespace: str, **spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": "memorygraph.io/v1alpha1",
        "kind": "MemoryGraph",
        "metadata": {"name": "checked", "namespace": namespace},
        "spec": spec,
    }


def _rejected(cluster: Cluster, obj: dict[str, Any], *flags: str) -> str:
    with pytest.raises(CommandFailed) as exc:
        cluster.kubectl("create", *flags, "-f", "-", input=json.dumps(obj))
    return str(exc.value.stderr)


def _patch_rejected(cluster: Cluster, namespace: str, patch: dict[str, Any]) -> str:
    with pytest.raises(CommandFailed) as exc:
        cluster.kubectl(
            "patch", "mg", "checked", "-n", namespace, "--type", "merge", "-p", json.dumps(patch)
        )
    return str(exc.value.stderr)


def test_storage_cannot_shrink_nor_change_class(installed: Cluster, namespace: str) -> None:
    installed.kubectl(
        "create",
        "-f",
        "-",
        input=json.dumps(_graph(namespace, storage={"size": "10Gi", "storageClassName": "a"})),
    )
    assert "storage.size cannot shrink" in _patch_rejected(
        installed, namespace, {"spec": {"storage": {"size": "5Gi"}}}
    )
    assert "storage.storageClassName is immutable" in _patch_rejected(
        installed, namespace, {"spec": {"storage": {"storageClassName": "b"}}}
    )
    # Growing is allowed.
    installed.kubectl(
        "patch",
        "mg",
        "checked",
        "-n",
        namespace,
        "--type",
        "merge",
        "-p",
        json.dumps({"spec": {"storage": {"size": "20Gi"}}}),
    )


def test_shards_are_a_power_of_two_fixed_when_the_graph_is_made(
    installed: Cluster, namespace: str
) -> None:
    assert "spec.shards" in _rejected(installed, _graph(namespace, shards=48))
    installed.kubectl("create", "-f", "-", input=json.dumps(_graph(namespace)))
    made = json.loads(installed.kubectl("get", "mg", "checked", "-n", namespace, "-o", "json"))
    assert made["spec"]["shards"] == 64  # the default, written down when the graph is made
    assert "shards cannot change once the graph exists" in _patch_rejected(
        installed, namespace, {"spec": {"shards": 128}}
    )


def test_archival_schedule_must_have_five_fields(installed: Cluster, namespace: str) -> None:
    destination = {"s3": {"bucket": "archive", "secretRef": {"name": "s3"}}}
    message = _rejected(
        installed, _graph(namespace, archival={"schedule": "* * *", "destination": destination})
    )
    assert "spec.archival.schedule" in message


def test_replicas_must_lie_within_the_autoscaling_bounds(
    installed: Cluster, namespace: str
) -> None:
    message = _rejected(
        installed,
        _graph(
            namespace,
            replicas=5,
            autoscaling={"enabled": True, "minReplicas": 1, "maxReplicas": 3},
        ),
    )
    assert "replicas must lie within autoscaling.minReplicas and autoscaling.maxReplicas" in message


def test_unknown_fields_are_rejected_with_strict_validation(
    installed: Cluster, namespace: str
) -> None:
    message = _rejected(installed, _graph(namespace, replica=2), "--validate=strict")
    assert 'unknown field "spec.replica"' in message


@pytest.mark.parametrize("service_type", ["NodePort", "LoadBalancer"])
def test_a_graph_is_exposed_outside_the_cluster_only_with_authentication(
    installed: Cluster, namespace: str, service_type: str
) -> None:
    message = _rejected(
        installed, _graph(namespace, service={"type": service_type}, auth={"enabled": False})
    )
    assert "exposes the graph outside the cluster and needs auth.enabled: true" in message
    # Authentication is on unless switched off: exposing a graph that says nothing is fine.
    installed.kubectl(
        "create", "-f", "-", input=json.dumps(_graph(namespace, service={"type": service_type}))
    )
    assert "needs auth.enabled: true" in _patch_rejected(
        installed, namespace, {"spec": {"auth": {"enabled": False}}}
    )


@pytest.mark.parametrize("key", ["token_file", "url", "ca_bundle"])
def test_a_plugin_config_cannot_carry_what_the_webhook_fields_set(
    installed: Cluster, namespace: str, key: str
) -> None:
    plugin = example("plugin-webhook.yaml", namespace)
    plugin["spec"]["config"] = {key: "/etc/memorygraph/auth/api-keys"}
    assert f"config.{key} is not accepted" in _rejected(installed, plugin)


def test_with_mutual_tls_the_archival_job_needs_a_certificate_of_its_own(
    installed: Cluster, namespace: str
) -> None:
    tls = {"secretRef": {"name": "tls"}, "requireClientCertificate": True}
    archival: dict[str, Any] = {
        "destination": {"s3": {"bucket": "archive", "secretRef": {"name": "s3"}}}
    }
    message = _rejected(installed, _graph(namespace, tls=tls, archival=archival))
    assert "archival needs archival.clientCertificateSecretRef" in message
    archival["clientCertificateSecretRef"] = {"name": "archival-client"}
    installed.kubectl(
        "create", "-f", "-", input=json.dumps(_graph(namespace, tls=tls, archival=archival))
    )
