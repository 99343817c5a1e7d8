"""The Helm chart: lint, template, schema validation, CRDs in sync, least-privilege RBAC."""

from __future__ import annotations

import logging
import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

import kopf
import kubernetes_validate
import memorygraph_operator.handlers  # noqa: F401  (registers the handlers kopf will run)
import pytest
import yaml
from apiserver import ApiServer
from memorygraph_operator.handlers import on_plugin, reconcile_graph_by_name
from memorygraph_operator.render.image import DEFAULT_IMAGE
from memorygraph_operator.settings import OperatorConfig
from operator_support import GRAPHS, PLUGINS, ROOT, load_example

CHART = ROOT / "charts" / "memorygraph-operator"
KUBE_VERSION = "1.33.0"


def _helm() -> str:
    tools = Path(os.environ.get("TOOLS_DIR", Path.home() / ".cache/memorygraph/bin"))
    found = shutil.which("helm") or (str(tools / "helm") if (tools / "helm").exists() else None)
    if found is None:
        pytest.fail(
            "helm is not on PATH: run `make tools` (builds it into TOOLS_DIR) or `make test`"
        )
    return found


def _template(*args: str) -> list[dict[str, Any]]:
    out = subprocess.run(
        [
            _helm(),
            "template",
            "mgo",
            str(CHART),
            "--namespace",
            "ops",
            "--kube-version",
            KUBE_VERSION,
            *args,
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    assert out.returncode == 0, out.stderr
    return [d for d in yaml.safe_load_all(out.stdout) if d]


def _by_kind(docs: list[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    return [d for d in docs if d["kind"] == kind]


def test_helm_lint_passes_strictly() -> None:
    out = subprocess.run([_helm(), "lint", "--strict", str(CHART)], capture_output=True, text=True)
    assert out.returncode == 0, out.stdout + out.stderr


def test_every_rendered_object_passes_kubernetes_schema_validation() -> None:
    for args in (
        [],
        ["--set", "watchNamespaces={team-a,team-b}"],
        ["--set", "metrics.serviceMonitor.enabled=true"],
    ):
        for doc in _template(*args):
            if doc["apiVersion"].startswith("monitoring.coreos.com/"):
                continue
            kubernetes_validate.validate(doc, KUBE_VERSION.rsplit(".", 1)[0], strict=True)


def test_values_schema_rejects_unknown_and_mistyped_values() -> None:
    for bad in (
        ["--set", "replicas=2"],
        ["--set", "crds.create=maybe"],
        ["--set", "watchNamespaces={Not_A_Namespace}"],
        ["--set", "dataPlaneMetricsNamespaces={Not_A_Namespace}"],
    ):
        out = subprocess.run(
            [_helm(), "template", "mgo", str(CHART), "--kube-version", KUBE_VERSION, *bad],
            capture_output=True,
            text=True,
        )
        assert out.returncode != 0, bad


def test_chart_crds_equal_the_generated_crds_and_are_kept() -> None:
    crds = _by_kind(_template(), "CustomResourceDefinition")
    assert len(crds) == 2
    for crd in crds:
        assert crd["metadata"]["annotations"] == {"helm.sh/resource-policy": "keep"}
        name = crd["metadata"]["name"]
        plural, group = name.split(".", 1)
        generated = yaml.safe_load((ROOT / f"crds/{group}_{plural}.yaml").read_text())
        crd["metadata"].pop("annotations")
        assert crd == generated
    assert _by_kind(_template("--set", "crds.create=false"), "CustomResourceDefinition") == []


def test_operator_deployment_is_single_recreate_restricted_and_uses_the_shared_image() -> None:
    (dep,) = _by_kind(_template(), "Deployment")
    spec = dep["spec"]
    assert spec["replicas"] == 1 and spec["strategy"] == {"type": "Recreate"}
    pod = spec["template"]["spec"]
    assert pod["securityContext"]["runAsNonRoot"] is True
    (container,) = pod["containers"]
    assert container["image"] == DEFAULT_IMAGE
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    assert container["securityContext"]["capabilities"] == {"drop": ["ALL"]}
    assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"
    env = _env(container)
    assert env["MEMORYGRAPH_DEFAULT_IMAGE"] == DEFAULT_IMAGE
    assert env["WATCH_NAMESPACE"] == ""
    assert env["MEMORYGRAPH_METRICS_NAMESPACES"] == ""


def _env(container: dict[str, Any], namespace: str = "operators") -> dict[str, str]:
    """The container's environment as its process sees it in ``namespace``."""
    env = {}
    for e in container["env"]:
        if "value" in e:
            env[e["name"]] = e["value"]
        else:
            assert e["valueFrom"] == {"fieldRef": {"fieldPath": "metadata.namespace"}}
            env[e["name"]] = namespace
    return env


def test_the_operators_environment_is_what_its_settings_read() -> None:
    docs = _template("--set", "concurrentReconciles=32", "--set", "resyncSeconds=120")
    (dep,) = _by_kind(docs, "Deployment")
    env = _env(dep["spec"]["template"]["spec"]["containers"][0])
    config = OperatorConfig.from_env(env)
    assert config.concurrent_reconciles == 32
    assert config.resync_seconds == 120
    # The graphs' NetworkPolicies admit the operator's own pods to their peer port.
    assert config.operator_pods is not None
    namespace, labels = config.operator_pods
    assert namespace == "operators"
    pod_labels = dep["spec"]["template"]["metadata"]["labels"]
    assert labels and all(pod_labels[k] == v for k, v in labels)
    assert dict(labels) == dep["spec"]["selector"]["matchLabels"]


def test_the_namespaces_that_scrape_graphs_reach_the_operator() -> None:
    docs = _template("--set", "dataPlaneMetricsNamespaces={monitoring,observability}")
    (dep,) = _by_kind(docs, "Deployment")
    env = _env(dep["spec"]["template"]["spec"]["containers"][0])
    assert env["MEMORYGRAPH_METRICS_NAMESPACES"] == "monitoring,observability"


def test_watch_namespaces_get_roles_and_no_cluster_wide_write_access() -> None:
    docs = _template("--set", "watchNamespaces={team-a,team-b}")
    roles = _by_kind(docs, "Role")
    assert sorted(r["metadata"]["namespace"] for r in roles) == ["team-a", "team-b"]
    cluster_rules = [
        rule
        for r in _by_kind(docs, "ClusterRole")
        if not any(
            k.startswith("rbac.authorization.k8s.io/aggregate-to")
            for k in r["metadata"].get("labels", {})
        )
        for rule in r["rules"]
    ]
    assert cluster_rules == [
        {
            "apiGroups": ["apiextensions.k8s.io"],
            "resources": ["customresourcedefinitions"],
            "verbs": ["list", "watch"],
        }
    ]
    (dep,) = _by_kind(docs, "Deployment")
    env = _env(dep["spec"]["template"]["spec"]["containers"][0])
    assert env["WATCH_NAMESPACE"] == "team-a,team-b"


@pytest.mark.parametrize("args", [[], ["--set", "watchNamespaces={team-a}"]], ids=["all", "ns"])
def test_secrets_are_only_read_and_created_never_listed_changed_or_deleted(
    args: list[str],
) -> None:
    docs = _template(*args)
    verbs = {
        verb
        for role in _by_kind(docs, "ClusterRole") + _by_kind(docs, "Role")
        for rule in role["rules"]
        if "" in rule["apiGroups"] and ("secrets" in rule["resources"] or "*" in rule["resources"])
        for verb in rule["verbs"]
    }
    assert verbs == {"get", "create"}


def test_aggregated_roles_extend_view_edit_and_admin() -> None:
    labels = [r["metadata"]["labels"] for r in _by_kind(_template(), "ClusterRole")]
    for role in ("view", "edit", "admin"):
        assert any(
            lb.get(f"rbac.authorization.k8s.io/aggregate-to-{role}") == "true" for lb in labels
        )


def _granted(docs: list[dict[str, Any]]) -> set[tuple[str, str, str]]:
    (role,) = [
        r
        for r in _by_kind(docs, "ClusterRole")
        if r["metadata"]["name"] == "mgo-memorygraph-operator"
    ]
    return {
        (verb, group, res)
        for rule in role["rules"]
        for group in rule["apiGroups"]
        for res in rule["resources"]
        for verb in rule["verbs"]
    }


def _kopf_needs() -> set[tuple[str, str, str]]:
    """What kopf itself does with the registered handlers: list+watch each resource, and patch
    the resources with change handlers (progress and last-handled annotations)."""
    registry = kopf.get_default_registry()
    needs = set()
    for reg in (registry._watching, registry._changing, registry._spawning):
        for handler in reg.get_all_handlers():
            sel = handler.selector
            needs |= {
                ("list", sel.group or "", sel.any_name),
                ("watch", sel.group or "", sel.any_name),
            }
            if reg is registry._changing:
                needs.add(("patch", sel.group or "", sel.any_name))
    return needs


@pytest.mark.asyncio
async def test_rbac_grants_exactly_the_verbs_the_operator_uses(
    api: ApiServer, memo: kopf.Memo
) -> None:
    """Replay the operator's busiest paths against the fake API server and compare."""
    log = logging.getLogger("test")
    api.resources["monitoring.coreos.com/v1/servicemonitors"] = {"namespaced": True}
    for name in ("plugin-pii-redactor.yaml", "plugin-webhook.yaml"):
        api.store(PLUGINS, load_example(name))
    full = load_example("memorygraph-full.yaml")
    api.store(GRAPHS, full)
    await reconcile_graph_by_name(memo, "apps", "agents-memory", log)
    # An autoscaled StatefulSet as an earlier version's HPA left it: adopted into the graph.
    api.edit(
        "apps/v1/statefulsets",
        "apps",
        "agents-memory",
        {
            "spec": {"replicas": 5},
            "metadata": {
                "managedFields": [
                    {
                        "manager": "kube-controller-manager",
                        "operation": "Update",
                        "subresource": "scale",
                        "fieldsV1": {"f:spec": {"f:replicas": {}}},
                    }
                ]
            },
        },
    )
    await reconcile_graph_by_name(memo, "apps", "agents-memory", log)
    assert api.read(GRAPHS, "apps", "agents-memory")["spec"]["replicas"] == 5  # type: ignore[index]
    api.store(
        "v1/persistentvolumeclaims",
        {"metadata": {"name": "data-agents-memory-0", "namespace": "apps"}},
    )
    api.edit(
        GRAPHS,
        "apps",
        "agents-memory",
        {
            "spec": {
                "storage": {"size": "60Gi"},
                "archival": None,
                "networkPolicy": {"enabled": False},
                "monitoring": None,
                "autoscaling": None,
                "auth": {"enabled": False},
                "replicas": 1,
                "podDisruptionBudget": {"enabled": False},
            }
        },
    )
    await reconcile_graph_by_name(memo, "apps", "agents-memory", log)
    await on_plugin(
        body=api.read(PLUGINS, "apps", "pii-redactor"),
        namespace="apps",
        memo=memo,
        logger=log,
    )

    used = {(verb, group, res) for verb, group, res in api.calls} | _kopf_needs()
    granted = _granted(_template())
    assert used - granted == set(), "the operator uses verbs the chart does not grant"
    assert granted - used == set(), "the chart grants verbs the operator never uses"
