"""The operator process: settings from the environment, command line, metrics."""

from __future__ import annotations

import logging

import kopf
import pytest
from apiserver import ApiServer
from memorygraph_operator.__main__ import main
from memorygraph_operator.handlers import reconcile_graph_by_name
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
