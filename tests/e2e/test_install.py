"""Scenario 1: the chart installs on a real API server and the operator works with its RBAC."""

from __future__ import annotations

import json
from pathlib import Path

from e2e_support import CHART, OPERATOR_NAMESPACE, RELEASE, Cluster, OperatorProcess

SERVICE_ACCOUNT = f"system:serviceaccount:{OPERATOR_NAMESPACE}:{RELEASE}"


def test_the_api_server_is_a_real_release(cluster: Cluster) -> None:
    version = json.loads(cluster.kubectl("version", "-o", "json"))["serverVersion"]
    assert version["gitVersion"].startswith("v1.")
    assert version["major"] == "1"
    assert int(version["minor"]) >= 30


def test_helm_install_establishes_the_crds(installed: Cluster) -> None:
    for crd in ("memorygraphs.memorygraph.io", "plugins.memorygraph.io"):
        obj = installed.get("crd", crd)
        assert obj is not None
        established = {c["type"]: c["status"] for c in obj["status"]["conditions"]}
        assert established["Established"] == "True"
        assert obj["metadata"]["annotations"]["helm.sh/resource-policy"] == "keep"
    names = installed.kubectl("api-resources", "--api-group", "memorygraph.io", "-o", "name")
    assert set(names.split()) == {"memorygraphs.memorygraph.io", "plugins.memorygraph.io"}
    assert "mg" in installed.kubectl("api-resources", "--api-group", "memorygraph.io")


def test_the_chart_grants_what_the_operator_uses_and_no_more(installed: Cluster) -> None:
    def can(verb: str, resource: str, namespace: str = "default") -> bool:
        return _allowed(installed, verb, resource, namespace)

    assert can("watch", "memorygraphs.memorygraph.io")
    assert can("patch", "memorygraphs.memorygraph.io/status")
    assert can("patch", "statefulsets.apps")
    assert can("create", "events")
    assert can("watch", "customresourcedefinitions.apiextensions.k8s.io")
    assert not can("list", "secrets")
    assert not can("watch", "secrets")
    assert not can("delete", "secrets") and not can("patch", "secrets")
    assert not can("delete", "namespaces")
    assert not can("create", "pods")


def test_a_namespaced_install_grants_only_its_namespaces_and_reading_crds(
    installed: Cluster, namespace: str
) -> None:
    """The install recommended for production: Roles in the watched namespaces only."""
    release, home = "mgo-scoped", f"{namespace}-op"
    installed.kubectl("create", "namespace", home)
    try:
        installed.helm(
            *("install", release, str(CHART), "--namespace", home),
            *("--set", f"watchNamespaces={{{namespace}}}", "--set", "crds.create=false"),
            *("--set", "rbac.aggregateToDefaultRoles=false", "--wait", "--timeout", "3m"),
        )
        account = f"system:serviceaccount:{home}:{release}-memorygraph-operator"

        def can(verb: str, resource: str, where: str) -> bool:
            return _allowed(installed, verb, resource, where, account, home)

        for verb, resource in [
            ("watch", "memorygraphs.memorygraph.io"),
            ("patch", "statefulsets.apps"),
            ("create", "cronjobs.batch"),
            ("get", "secrets"),
            ("create", "secrets"),
        ]:
            assert can(verb, resource, namespace), (verb, resource)
            assert not can(verb, resource, "default"), (verb, resource)
            assert not can(verb, resource, ""), (verb, resource)  # cluster-wide
        assert not can("delete", "secrets", namespace)
        assert can("watch", "customresourcedefinitions.apiextensions.k8s.io", "")
    finally:
        installed.helm("uninstall", release, "--namespace", home, "--wait")
        installed.kubectl("delete", "namespace", home, "--wait=false")


def _allowed(
    cluster: Cluster,
    verb: str,
    resource: str,
    namespace: str,
    user: str = SERVICE_ACCOUNT,
    home: str = OPERATOR_NAMESPACE,
) -> bool:
    """The API server's authorizer asked directly (a SubjectAccessReview)."""
    review = {
        "apiVersion": "authorization.k8s.io/v1",
        "kind": "SubjectAccessReview",
        "spec": {
            "user": user,
            "groups": ["system:serviceaccounts", f"system:serviceaccounts:{home}"],
            "resourceAttributes": _attributes(verb, resource, namespace),
        },
    }
    out = cluster.kubectl("create", "-o", "json", "-f", "-", input=json.dumps(review))
    return bool(json.loads(out)["status"].get("allowed"))


def _attributes(verb: str, resource: str, namespace: str) -> dict[str, str]:
    resource, _, subresource = resource.partition("/")
    plural, _, group = resource.partition(".")
    attrs = {"verb": verb, "resource": plural, "group": group, "namespace": namespace}
    if subresource:
        attrs["subresource"] = subresource
    return attrs


def test_the_operator_runs_as_the_charts_service_account(
    installed: Cluster, operator: OperatorProcess
) -> None:
    assert operator.healthy()
    config = json.loads(Path(operator.kubeconfig).read_text())
    assert "token" in config["users"][0]["user"]
    assert "client-certificate-data" not in config["users"][0]["user"]
    assert "watching all namespaces for memorygraph.io" in operator.log()
