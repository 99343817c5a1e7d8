"""The operator scale benchmark's accounting (hack/operator_scale.py): how requests are counted.

The benchmark's figures in docs/benchmarks.md are requests per graph by verb and resource and
latency percentiles; these are the functions that compute them.
"""

from __future__ import annotations

import importlib.util
import sys
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
