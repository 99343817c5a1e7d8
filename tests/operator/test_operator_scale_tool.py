"""The operator scale benchmark's accounting (hack/operator_scale.py): how requests are counted.

The benchmark's figures in docs/benchmarks.md are requests per graph by verb and resource and
latency percentiles; these are the functions that compute them.
"""

from __future__ import annotations

import importlib.util
import sys
import time
from types import ModuleType

import pytest
from operator_support import ROOT


@pytest.fixture(scope="module")
def tool() -> ModuleType:
    spec = importlib.util.spec_from_file_location(
        "operator_scale", ROOT / "hack" / "operator_scale.py"
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["operator_scale"] = module  # dataclasses resolve their module by name
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize(
    ("method", "path", "query", "expected"),
    [
        (
            "GET",
            "/apis/memorygraph.io/v1alpha1/namespaces/a/memorygraphs/g",
            {},
            ("GET", "memorygraphs"),
        ),
        ("GET", "/apis/memorygraph.io/v1alpha1/memorygraphs", {}, ("LIST", "memorygraphs")),
        ("GET", "/apis/apps/v1/statefulsets", {"watch": "true"}, ("WATCH", "statefulsets")),
        ("GET", "/api/v1/watch/namespaces/a/configmaps", {}, ("WATCH", "configmaps")),
        (
            "PATCH",
            "/apis/memorygraph.io/v1alpha1/namespaces/a/memorygraphs/g/status",
            {},
            ("PATCH", "memorygraphs/status"),
        ),
        ("POST", "/api/v1/namespaces/a/events", {}, ("POST", "events")),
        ("GET", "/apis/monitoring.coreos.com/v1", {}, ("GET", "discovery")),
        ("GET", "/version", {}, ("GET", "discovery")),
    ],
)
def test_requests_are_counted_by_verb_and_resource(
    tool: ModuleType, method: str, path: str, query: dict[str, str], expected: tuple[str, str]
) -> None:
    assert tool.classify(method, path, query) == expected


def test_requests_per_graph_and_the_failed_ones(tool: ModuleType) -> None:
    log = tool.RequestLog()
    for status in (200, 200, 404, 200):
        log.finish(log.add("GET", "secrets"), status)
    log.finish(log.add("PATCH", "memorygraphs/status"), 200)
    summary = tool.summarize_requests(log.records, graphs=2)
    assert summary["total"] == 5
    assert summary["per_graph_by_verb_resource"] == {
        "GET secrets": 2.0,
        "PATCH memorygraphs/status": 0.5,
    }
    assert summary["non_2xx"] == {"GET secrets 404": 1}


def test_latency_percentiles_are_nearest_rank(tool: ModuleType) -> None:
    values = [float(i) for i in range(1, 101)]
    summary = tool.percentiles(values)
    assert (summary["p50"], summary["p90"], summary["p99"], summary["max"]) == (
        50.0,
        90.0,
        99.0,
        100.0,
    )
    assert tool.percentiles([]) == {"count": 0}


@pytest.fixture(scope="module")
def floor(tool: ModuleType) -> ModuleType:
    spec = importlib.util.spec_from_file_location(
        "apiserver_floor", ROOT / "hack" / "apiserver_floor.py"
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_floor_sends_every_golden_child_renamed_without_owners(floor: ModuleType) -> None:
    """hack/apiserver_floor.py applies what the operator renders for a default graph: every
    golden child, renamed into the run's namespace, and none still naming the golden graph."""
    template = floor.children_template()
    children = floor.children_of(template, "floor-ab12cd", "g00042")
    kinds = sorted(child["kind"] for child in children)
    assert kinds == [
        "ConfigMap",
        "ConfigMap",
        "NetworkPolicy",
        "Secret",
        "Service",
        "Service",
        "StatefulSet",
    ]
    for child in children:
        meta = child["metadata"]
        assert meta["namespace"] == "floor-ab12cd"
        assert meta["name"].startswith("g00042")
        assert "ownerReferences" not in meta
        text = str(child)
        assert "chat-memory" not in text and ".apps.svc" not in text
    # The peer-key Secret the tool creates is the one the StatefulSet mounts.
    sts = next(child for child in children if child["kind"] == "StatefulSet")
    projected = [
        source["secret"]["name"]
        for volume in sts["spec"]["template"]["spec"]["volumes"]
        for source in (volume.get("projected") or {}).get("sources", [])
        if "secret" in source
    ]
    assert floor.peer_secret("floor-ab12cd", "g00042")["metadata"]["name"] in projected


def test_control_plane_cpu_is_counted_by_process_name(tool: ModuleType) -> None:
    before = tool.control_plane_cpu()
    assert "machine_busy" in before
    assert all(key.partition(":")[0] in tool.CONTROL_PLANE for key in before if ":" in key)
    spent = time.process_time()
    while time.process_time() - spent < 0.3:  # CPU of this process, which the machine counts
        pass
    used = tool.cpu_used(before, tool.control_plane_cpu())
    assert used["machine_busy"] >= 0.2
    assert set(used) == {*tool.CONTROL_PLANE, "machine_busy"}


def test_cpu_used_sums_processes_by_name_and_never_goes_negative(tool: ModuleType) -> None:
    before = {"etcd:10": 5.0, "kube-apiserver:11": 7.0, "kube-apiserver:12": 1.0, "operator": 2}
    after = {
        "etcd:10": 6.5,  # +1.5
        "kube-apiserver:11": 9.0,  # +2.0
        # kube-apiserver:12 ended: not counted
        "kube-apiserver:13": 0.5,  # started in between: counts from zero
        "operator": 2.25,
    }
    used = tool.cpu_used(before, after)
    assert used["etcd"] == 1.5
    assert used["kube-apiserver"] == 2.5
    assert used["operator"] == 0.25
    assert used["kwok"] == 0.0
