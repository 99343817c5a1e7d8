"""The operator process: settings from the environment, command line, metrics."""

from __future__ import annotations

import asyncio
import logging

import kopf
import pytest
from apiserver import ApiServer
from memorygraph_operator.__main__ import build_memo, load_config, main
from memorygraph_operator.handlers import on_cleanup, on_startup, reconcile_graph_by_name
from memorygraph_operator.metrics import ReadinessTracker
from memorygraph_operator.render.image import DEFAULT_IMAGE
from memorygraph_operator.settings import OperatorConfig, configure_kopf
from operator_support import GRAPHS, load_example
from prometheus_client import REGISTRY


def test_config_reads_the_variables_the_chart_sets() -> None:
    config = OperatorConfig.from_env(
        {
            "WATCH_NAMESPACE": "team-a, team-b,",
            "MEMORYGRAPH_DEFAULT_IMAGE": "registry.local/mg:1",
            "MEMORYGRAPH_METRICS_PORT": "9000",
            "MEMORYGRAPH_HEALTH_PORT": "9001",
            "MEMORYGRAPH_RESYNC_SECONDS": "60",
        }
    )
    assert config == OperatorConfig("registry.local/mg:1", ("team-a", "team-b"), 9000, 9001, 60.0)
    assert OperatorConfig.from_env({}) == OperatorConfig(DEFAULT_IMAGE, (), 8080, 8081, 300.0)


def test_the_namespaces_that_scrape_graphs_reach_the_render_environment(memo: kopf.Memo) -> None:
    config = OperatorConfig.from_env({"MEMORYGRAPH_METRICS_NAMESPACES": "monitoring, obs"})
    assert config.metrics_namespaces == ("monitoring", "obs")
    assert build_memo(config, memo.kube).env.metrics_namespaces == ("monitoring", "obs")
    assert OperatorConfig.from_env({}).metrics_namespaces == ()


def test_command_line_namespaces_and_the_resync_interval_reach_the_memo(memo: kopf.Memo) -> None:
    environ = {"WATCH_NAMESPACE": "team-c", "MEMORYGRAPH_RESYNC_SECONDS": "60"}
    config, _ = load_config(["--namespace", "team-a", "-n", "team-b"], environ)
    operator_memo = build_memo(config, memo.kube)
    assert operator_memo.namespaces == ("team-a", "team-b")
    assert operator_memo.resync_seconds == 60.0
    # Without --namespace, WATCH_NAMESPACE decides.
    config, _ = load_config([], environ)
    assert build_memo(config, memo.kube).namespaces == ("team-c",)


@pytest.mark.asyncio
async def test_periodic_resync_runs_at_the_interval_in_the_memo(
    api: ApiServer, memo: kopf.Memo
) -> None:
    api.store(GRAPHS, load_example("memorygraph-minimal.yaml"))
    memo.resync_seconds = 0.05
    await on_startup(memo=memo, logger=logging.getLogger("test"))
    try:
        for _ in range(100):
            if (api.read(GRAPHS, "apps", "chat-memory") or {}).get("status"):
                break
            await asyncio.sleep(0.05)
        assert (api.read(GRAPHS, "apps", "chat-memory") or {}).get("status"), "no resync ran"
    finally:
        await on_cleanup(memo=memo)


def test_metrics_and_health_can_be_kept_on_loopback() -> None:
    assert OperatorConfig.from_env({}).bind_address == "0.0.0.0"
    config = OperatorConfig.from_env({"MEMORYGRAPH_BIND_ADDRESS": "127.0.0.1"})
    assert config.bind_address == "127.0.0.1"


def test_kopf_settings_post_no_generic_events_and_keep_state_in_our_annotations() -> None:
    settings = kopf.OperatorSettings()
    configure_kopf(settings)
    assert settings.posting.enabled is False
    assert settings.persistence.finalizer == "memorygraph.io/finalizer"


def test_command_line_help_exits_cleanly(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        main(["--help"])
    assert exc.value.code == 0
    assert "--namespace" in capsys.readouterr().out


def _sample(name: str, **labels: str) -> float:
    value = REGISTRY.get_sample_value(name, labels)
    return 0.0 if value is None else value


@pytest.mark.asyncio
async def test_reconciles_are_counted_and_graphs_tracked_by_readiness(
    api: ApiServer, memo: kopf.Memo
) -> None:
    before = _sample("memorygraph_operator_reconcile_total", kind="MemoryGraph", result="success")
    api.store(GRAPHS, load_example("memorygraph-minimal.yaml"))
    await reconcile_graph_by_name(memo, "apps", "chat-memory", logging.getLogger("test"))
    after = _sample("memorygraph_operator_reconcile_total", kind="MemoryGraph", result="success")
    assert after == before + 1
    assert _sample("memorygraph_operator_resources", kind="MemoryGraph", ready="False") >= 1
    assert _sample("memorygraph_operator_reconcile_duration_seconds_count", kind="MemoryGraph") >= 1


def test_the_readiness_gauge_follows_every_change_of_every_resource() -> None:
    tracker = ReadinessTracker()
    for i in range(5):
        tracker.set("Tracked", "ns", f"g{i}", "False")
    tracker.set("Tracked", "ns", "g0", "True")
    tracker.set("Tracked", "ns", "g1", "True")
    tracker.set("Tracked", "ns", "g1", "True")  # unchanged
    tracker.set("Tracked", "ns", "g2", None)  # gone
    tracker.set("Tracked", "ns", "g9", None)  # never known
    tracker.set("Tracked", "ns", "g3", "Unknown")
    counts = {
        s: _sample("memorygraph_operator_resources", kind="Tracked", ready=s)
        for s in ("True", "False", "Unknown")
    }
    assert counts == {"True": 2, "False": 1, "Unknown": 1}


def test_concurrent_reconciles_come_from_the_environment() -> None:
    assert OperatorConfig.from_env({}).concurrent_reconciles == 8
    assert (
        OperatorConfig.from_env({"MEMORYGRAPH_CONCURRENT_RECONCILES": "32"}).concurrent_reconciles
        == 32
    )
    with pytest.raises(ValueError, match="at least 1"):
        OperatorConfig.from_env({"MEMORYGRAPH_CONCURRENT_RECONCILES": "0"})


def test_the_operators_own_pods_come_from_the_environment_and_bad_labels_are_refused() -> None:
    assert OperatorConfig.from_env({}).operator_pods is None
    config = OperatorConfig.from_env(
        {
            "MEMORYGRAPH_OPERATOR_NAMESPACE": "operators",
            "MEMORYGRAPH_OPERATOR_POD_LABELS": "app=mgo, release=a",
        }
    )
    assert config.operator_pods == ("operators", (("app", "mgo"), ("release", "a")))
    with pytest.raises(ValueError, match="key=value"):
        OperatorConfig.from_env(
            {"MEMORYGRAPH_OPERATOR_NAMESPACE": "o", "MEMORYGRAPH_OPERATOR_POD_LABELS": "app"}
        )
