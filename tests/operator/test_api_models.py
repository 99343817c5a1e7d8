"""The API models accept the documented examples and reject what the CRD's rules reject."""

from __future__ import annotations

import copy
from typing import Any

import jsonschema
import pytest
from memorygraph.plugins.schema import Hook
from memorygraph_operator.api.crdgen import KINDS, build_crd
from memorygraph_operator.errors import InvalidSpec
from memorygraph_operator.reconcile.inputs import parse_graph, parse_plugin
from operator_support import EXAMPLES, load_example


def _schema(kind: str) -> dict[str, Any]:
    crd = build_crd(next(k for k in KINDS if k.kind == kind))
    return dict(crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"])


@pytest.mark.parametrize("name", sorted(p.name for p in EXAMPLES.glob("*.yaml")))
def test_examples_are_valid_against_models_and_crd_schema(name: str) -> None:
    manifest = load_example(name)
    assert manifest["apiVersion"] == "memorygraph.io/v1alpha1"
    _validate(manifest, _schema(manifest["kind"]))
    if manifest["kind"] == "MemoryGraph":
        parse_graph(manifest)
    else:
        parse_plugin(manifest["spec"])


def _validate(instance: dict[str, Any], schema: dict[str, Any]) -> None:
    # OpenAPI v3.0 schemas follow draft 4 (boolean exclusiveMinimum and friends).
    jsonschema.Draft4Validator(schema).validate(instance)


def _graph(**spec: Any) -> dict[str, Any]:
    return {"metadata": {"name": "g", "namespace": "ns"}, "spec": spec}


@pytest.mark.parametrize(
    ("spec", "needle"),
    [
        ({"replicas": 5, "autoscaling": {"enabled": True, "maxReplicas": 3}}, "replicas must lie"),
        ({"autoscaling": {"minReplicas": 4, "maxReplicas": 2}}, "minReplicas must not exceed"),
        (
            {
                "archival": {
                    "schedule": "0 3 * *",
                    "destination": {"s3": {"bucket": "bucket", "secretRef": {"name": "s"}}},
                }
            },
            "five-field",
        ),
        (
            {
                "archival": {
                    "schedule": "0 0 3 * * *",
                    "destination": {"s3": {"bucket": "bucket", "secretRef": {"name": "s"}}},
                }
            },
            "five-field",
        ),
        ({"archival": {"destination": {}}}, "exactly one of vault and s3"),
        ({"storage": {"size": "lots"}}, "storage.size"),
        ({"durability": "durable"}, "durability"),
        ({"replicaz": 1}, "replicaz"),
        ({"shards": 48}, "shards"),
        ({"shards": 8192}, "shards"),
        (
            {"service": {"type": "LoadBalancer"}, "auth": {"enabled": False}},
            "exposes the graph outside the cluster and needs auth.enabled: true",
        ),
        (
            {
                "tls": {"secretRef": {"name": "tls"}, "requireClientCertificate": True},
                "archival": {"destination": {"s3": {"bucket": "b3b", "secretRef": {"name": "s"}}}},
            },
            "archival needs archival.clientCertificateSecretRef",
        ),
    ],
)
def test_invalid_graph_specs_are_rejected_naming_the_field(
    spec: dict[str, Any], needle: str
) -> None:
    with pytest.raises(InvalidSpec, match=needle):
        parse_graph(_graph(**spec))


def test_webhook_plugins_need_a_webhook_and_others_must_not_have_one() -> None:
    webhook = copy.deepcopy(load_example("plugin-webhook.yaml")["spec"])
    del webhook["webhook"]
    with pytest.raises(InvalidSpec, match="webhook"):
        parse_plugin(webhook)
    redactor = load_example("plugin-pii-redactor.yaml")["spec"]
    with pytest.raises(InvalidSpec, match="webhook"):
        parse_plugin({**redactor, "webhook": {"url": "https://x"}})


@pytest.mark.parametrize("hook", ["on_create", "before_teleport"])
def test_plugin_hooks_must_be_hook_points_the_data_plane_has(hook: str) -> None:
    spec = {**load_example("plugin-pii-redactor.yaml")["spec"], "hooks": [hook]}
    with pytest.raises(InvalidSpec, match=f"unknown hook names: {hook}"):
        parse_plugin(spec)


@pytest.mark.parametrize(
    ("change", "needle"),
    [
        ({"config": {"patterns": ["ssn"]}}, "config.patterns.0"),
        ({"config": {"mode": "shred"}}, "config.mode"),
        ({"type": "Quota", "config": {}}, "max_nodes_per_session"),
        (
            {"type": "Validator", "config": {"deny_patterns": ["(?<=secret)x"]}},
            "config.deny_patterns: '\\(\\?<=secret\\)x' is not a valid RE2 pattern",
        ),
    ],
    ids=["unknown-pii-kind", "unknown-mode", "quota-without-limit", "not-re2"],
)
def test_plugins_the_data_plane_would_refuse_are_invalid(
    change: dict[str, Any], needle: str
) -> None:
    # The data plane refuses a whole plugins.yaml over one bad entry (and a pod will not start
    # with it), so the operator must reject such a Plugin before it reaches any graph's config.
    spec = {**load_example("plugin-pii-redactor.yaml")["spec"], **change}
    with pytest.raises(InvalidSpec, match=f"data plane refuses this plugin: .*{needle}"):
        parse_plugin(spec, "pii-redactor")


def test_webhook_plugins_take_no_config_keys_the_data_plane_does_not_know() -> None:
    spec = {**load_example("plugin-webhook.yaml")["spec"], "config": {"retries": 3}}
    with pytest.raises(InvalidSpec, match=r"config\.retries: Extra inputs are not permitted"):
        parse_plugin(spec, "policy-webhook")


@pytest.mark.parametrize(
    ("key", "field"),
    [
        ("token_file", "spec.webhook.tokenSecretRef"),
        ("url", "spec.webhook.url"),
        ("ca_bundle", "spec.webhook.caBundle"),
    ],
)
def test_plugin_config_refuses_the_keys_the_webhook_fields_set(key: str, field: str) -> None:
    # A token_file of the user's choosing would make the data plane send any file it can read
    # (the graph's API keys, another plugin's token) as a bearer token to the webhook.
    spec = {
        **load_example("plugin-webhook.yaml")["spec"],
        "config": {key: "/etc/memorygraph/auth/api-keys"},
    }
    with pytest.raises(InvalidSpec, match=f"config.{key} is not accepted: set {field} instead"):
        parse_plugin(spec, "policy-webhook")
    built_in = {k: v for k, v in spec.items() if k != "webhook"}
    with pytest.raises(InvalidSpec, match=f"config.{key} is not accepted"):
        parse_plugin({**built_in, "type": "Redactor"}, "p")


def test_crd_schema_rejects_lowercase_enums_and_bad_cron() -> None:
    schema = _schema("MemoryGraph")
    with pytest.raises(jsonschema.ValidationError):
        _validate({"spec": {"storage": {"deletionPolicy": "retain"}}}, schema)
    with pytest.raises(jsonschema.ValidationError):
        _validate({"spec": {"archival": {"schedule": "@daily", "destination": {}}}}, schema)


def test_crd_schema_accepts_exactly_the_data_planes_hook_names() -> None:
    schema = _schema("Plugin")
    spec = load_example("plugin-pii-redactor.yaml")["spec"]
    every_hook = [h.value for h in Hook]
    _validate({"spec": {**spec, "hooks": every_hook}}, schema)
    with pytest.raises(jsonschema.ValidationError, match="before_teleport"):
        _validate({"spec": {**spec, "hooks": ["before_teleport"]}}, schema)
