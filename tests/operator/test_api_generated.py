"""The generated CRDs, chart CRDs and API reference match the models, and are structural."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml
from memorygraph_operator.api.base import API_VERSION
from memorygraph_operator.api.crdgen import KINDS, build_crd, outputs
from operator_support import ROOT

REGENERATE = "python -m memorygraph_operator.api.crdgen (or make generate-operator)"


@pytest.mark.parametrize("path", sorted(outputs(ROOT)), ids=lambda p: str(p.relative_to(ROOT)))
def test_generated_file_is_fresh(path: Path) -> None:
    expected = outputs(ROOT)[path]
    assert path.exists(), f"{path} missing: run {REGENERATE}"
    assert path.read_text() == expected, f"{path} is stale: run {REGENERATE}"


def test_the_api_version_is_the_published_one() -> None:
    # Every manifest users wrote names it: changing it is a new API version, never a rename.
    assert API_VERSION == "memorygraph.io/v1alpha1"
    for k in KINDS:
        crd = build_crd(k)
        group, version = crd["spec"]["group"], crd["spec"]["versions"][0]["name"]
        assert f"{group}/{version}" == API_VERSION


@pytest.mark.parametrize("kind", KINDS, ids=lambda k: k.kind)
def test_crd_passes_kubernetes_schema_validation(kind: Any) -> None:
    kubernetes_validate.validate(build_crd(kind), "1.33", strict=True)


def _walk(node: dict[str, Any], path: str = "") -> list[tuple[str, dict[str, Any]]]:
    out = [(path, node)]
    for name, sub in node.get("properties", {}).items():
        out += _walk(sub, f"{path}.{name}")
    if isinstance(node.get("items"), dict):
        out += _walk(node["items"], f"{path}[]")
    if isinstance(node.get("additionalProperties"), dict):
        out += _walk(node["additionalProperties"], f"{path}{{}}")
    return out


@pytest.mark.parametrize("kind", KINDS, ids=lambda k: k.kind)
def test_crd_schema_is_structural(kind: Any) -> None:
    schema = build_crd(kind)["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    for path, node in _walk(schema):
        assert not {"$ref", "anyOf", "oneOf", "allOf", "title"} & node.keys(), path
        assert (
            "type" in node
            or node.get("x-kubernetes-int-or-string")
            or node.get("x-kubernetes-preserve-unknown-fields")
        ), f"{path} has no type"
        if "properties" in node:
            assert "additionalProperties" not in node, path
        assert node.get("type") != "null", path


@pytest.mark.parametrize("kind", KINDS, ids=lambda k: k.kind)
def test_object_defaults_spell_out_their_nested_defaults(kind: Any) -> None:
    """The API server checks a default against the CEL rules without applying the defaults
    nested in it; `storage: {default: {}}` made it reject the whole CRD ("no such key: size")."""
    schema = build_crd(kind)["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    for path, node in _walk(schema):
        default = node.get("default")
        if not isinstance(default, dict):
            continue
        for name, sub in node.get("properties", {}).items():
            if "default" in sub:
                assert default.get(name) == sub["default"], f"{path}.default lacks {name}"


def _rules(kind_name: str) -> list[str]:
    crd = build_crd(next(k for k in KINDS if k.kind == kind_name))
    schema = crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    return [r["rule"] for _, n in _walk(schema) for r in n.get("x-kubernetes-validations", [])]


def test_memorygraph_crd_carries_the_cel_guards() -> None:
    rules = " ".join(_rules("MemoryGraph"))
    assert "quantity(self.size).compareTo(quantity(oldSelf.size)) >= 0" in rules
    assert "self.storageClassName == oldSelf.storageClassName" in rules
    assert "self.replicas >= self.autoscaling.minReplicas" in rules
    assert "self.matches(" in rules
    assert "self.service.type == 'ClusterIP' ||" in rules


def test_memorygraph_crd_has_scale_status_and_columns() -> None:
    crd = yaml.safe_load((ROOT / "crds/memorygraph.io_memorygraphs.yaml").read_text())
    version = crd["spec"]["versions"][0]
    assert version["subresources"]["scale"] == {
        "specReplicasPath": ".spec.replicas",
        "statusReplicasPath": ".status.replicas",
        "labelSelectorPath": ".status.selector",
    }
    assert "status" in version["subresources"]
    columns = {c["name"]: c for c in version["additionalPrinterColumns"]}
    assert list(columns) == [
        "Ready",
        "Replicas",
        "Image",
        "Storage",
        "Rebalancing",
        "Age",
        "Reason",
        "Shards",
    ]
    assert columns["Reason"]["priority"] == columns["Shards"]["priority"] == 1
    assert (
        columns["Rebalancing"]["jsonPath"] == '.status.conditions[?(@.type=="Rebalancing")].status'
    )
    assert columns["Shards"]["jsonPath"] == ".status.shards.spread"
    assert crd["spec"]["names"]["shortNames"] == ["mg"]
    assert crd["spec"]["names"]["categories"] == ["memorygraph"]


def _resolves(schema: dict[str, Any], json_path: str) -> bool:
    """Whether a printer column's or the scale subresource's JSONPath names a declared field."""
    node = schema
    for token in re.findall(r"\.[A-Za-z]+|\[[^\]]*\]", json_path):
        if token.startswith("["):
            node = node.get("items", {})
        elif token == ".metadata" and node is schema:
            return True  # ObjectMeta: the API server's, not ours
        else:
            node = node.get("properties", {}).get(token[1:], {})
        if not node:
            return False
    return True


@pytest.mark.parametrize("kind", KINDS, ids=lambda k: k.kind)
def test_printer_columns_and_scale_paths_name_declared_fields(kind: Any) -> None:
    # The paths are strings beside the models: a renamed status field must not leave an empty
    # column or a scale subresource the API server cannot read behind.
    version = build_crd(kind)["spec"]["versions"][0]
    schema = version["schema"]["openAPIV3Schema"]
    paths = [c["jsonPath"] for c in version["additionalPrinterColumns"]]
    paths += [p for k, p in version["subresources"].get("scale", {}).items() if k.endswith("Path")]
    assert paths
    assert [p for p in paths if not _resolves(schema, p)] == []


def test_chart_crds_are_kept_on_uninstall_and_switchable() -> None:
    for path in (ROOT / "charts/memorygraph-operator/templates/crds").glob("*.yaml"):
        text = path.read_text()
        assert text.startswith("{{- if .Values.crds.create }}"), path
        assert "helm.sh/resource-policy: keep" in text, path
