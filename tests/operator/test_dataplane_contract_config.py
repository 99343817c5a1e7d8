"""The rendered config, mounts and command against the data plane's own loaders and parser."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from memorygraph.cli import build_parser
from memorygraph.config import ServerConfig, load_config
from memorygraph.errors import ConfigError
from memorygraph.plugins.config import check_webhooks, parse_plugins
from memorygraph.plugins.outbound import WebhookPolicy
from memorygraph.plugins.pipeline import PluginPipeline
from memorygraph_operator.reconcile.memorygraph import new_api_key
from memorygraph_operator.render import (
    render_archival_cronjob,
    render_configmap,
    render_statefulset,
)
from rendered_pod import _container, _container_port, _mounted_files, _rendered
from test_render_golden import CASES, _graph


def _server_config(
    cm: dict[str, Any], directory: Path, container: dict[str, Any] | None = None
) -> ServerConfig:
    path = directory / "memorygraph.yaml"
    path.write_text(cm["data"]["memorygraph.yaml"])
    # What the pod gets: the file, and the container's literal environment variables.
    environ = {v["name"]: v["value"] for v in (container or {}).get("env") or [] if "value" in v}
    return load_config(path, environ=environ)


@pytest.mark.parametrize("case", list(CASES))
def test_rendered_server_config_loads_with_the_data_planes_own_loader(
    case: str, tmp_path: Path
) -> None:
    g, _, cm, sts = _rendered(case)
    container = _container(sts)
    config = _server_config(cm, tmp_path, container)

    assert config.port == _container_port(container, "grpc")
    assert config.metrics_port == _container_port(container, "metrics")
    # One process per pod, whatever the node's CPUs: the probes, the metrics port and the
    # Services are one process's.
    assert config.workers == 1
    # The default is left to the data plane, whose own is the same (64 for a new directory).
    assert config.shards == (None if g.spec.shards == 64 else g.spec.shards)
    assert config.durability.value == g.spec.durability.lower()
    assert config.pin_cpus == g.spec.pin_cpus
    assert config.log_level == g.spec.log_level.lower()
    assert config.auth.enabled == g.spec.auth_enabled
    assert (config.tls.cert_file is not None) == (g.spec.tls is not None)
    assert (config.registry.url is not None) == (g.spec.registry is not None)
    # SIGTERM lets in-flight calls finish; the kubelet must not SIGKILL the server before that.
    grace = sts["spec"]["template"]["spec"]["terminationGracePeriodSeconds"]
    assert config.shutdown_grace_seconds < grace


@pytest.mark.parametrize("case", list(CASES))
def test_rendered_plugins_config_builds_the_data_planes_pipeline(case: str, tmp_path: Path) -> None:
    g, _, cm, _ = _rendered(case)
    plugins = parse_plugins(cm["data"]["plugins.yaml"], "rendered plugins.yaml")
    # Webhook tokens where the server accepts them: in the plugin's own secrets directory.
    policy = WebhookPolicy.from_config(_server_config(cm, tmp_path))
    check_webhooks(plugins, policy, "rendered plugins.yaml")
    pipeline = PluginPipeline.build(plugins, count_nodes=lambda session, limit: 0, policy=policy)

    expected = sorted(g.plugins, key=lambda p: (p.spec.order, p.name))
    assert [p.name for p in plugins.plugins] == [p.name for p in expected]
    assert len(pipeline.plugins) == len(expected)
    for rendered, plugin in zip(plugins.plugins, expected, strict=True):
        assert rendered.type == plugin.spec.type.lower()
        assert [h.value for h in rendered.effective_hooks] == plugin.spec.hooks
        assert rendered.failure_policy == plugin.spec.failure_policy


@pytest.mark.parametrize("case", list(CASES))
def test_every_file_the_config_names_is_mounted_into_the_container(
    case: str, tmp_path: Path
) -> None:
    _, _, cm, sts = _rendered(case)
    config = _server_config(cm, tmp_path)
    container = _container(sts)
    mounted = _mounted_files(cm, sts)

    args = build_parser().parse_args(container["command"][1:])
    named = [
        args.config,
        config.plugins_file,
        config.auth.api_keys_file,
        config.tls.cert_file,
        config.tls.key_file,
        config.tls.client_ca_file,
        config.registry.token_file,
    ]
    plugins = parse_plugins(cm["data"]["plugins.yaml"])
    named += [p.typed_config().token_file for p in plugins.plugins if p.type == "webhook"]
    for path in named:
        if path is not None:
            assert str(path) in mounted, f"{path} is named by the config but not mounted"

    data_mount = next(m["mountPath"] for m in container["volumeMounts"] if m["name"] == "data")
    claim = sts["spec"]["volumeClaimTemplates"][0]["metadata"]["name"]
    assert claim == "data", "the data mount must come from the volume claim template"
    assert str(config.data_dir).startswith(data_mount + "/")


@pytest.mark.parametrize("case", list(CASES))
def test_container_command_is_what_memorygraph_serve_accepts(case: str) -> None:
    _, _, _, sts = _rendered(case)
    command = _container(sts)["command"]
    assert command[0] == "memorygraph"

    args = build_parser().parse_args(command[1:])
    assert args.command == "serve"
    # No flag overrides the file: ports, data dir and durability all come from the ConfigMap,
    # so the container ports and probes above describe what the server really listens on.
    assert (args.port, args.metrics_port, args.data_dir, args.durability) == (None,) * 4


def test_pods_get_no_service_link_variables_the_data_plane_would_read_as_settings(
    tmp_path: Path,
) -> None:
    # Service links put `<SERVICE>_PORT=tcp://ip:port` into every container. A graph named
    # "memorygraph" has a Service of that name, so the variable would be MEMORYGRAPH_PORT, which
    # the data plane reads as its gRPC port and refuses.
    manifest, plugins, env = CASES["full"]
    manifest = {**manifest, "metadata": {**manifest["metadata"], "name": "memorygraph"}}
    g = _graph(manifest, plugins)
    cm, sts = render_configmap(g), render_statefulset(g, env)
    (tmp_path / "memorygraph.yaml").write_text(cm["data"]["memorygraph.yaml"])
    links = {"MEMORYGRAPH_PORT": "tcp://10.0.0.7:50051", "MEMORYGRAPH_SERVICE_HOST": "10.0.0.7"}
    with pytest.raises(ConfigError, match="port"):
        load_config(tmp_path / "memorygraph.yaml", environ=links)

    cron = render_archival_cronjob(g, env)
    assert cron is not None
    for pod in (
        sts["spec"]["template"]["spec"],
        cron["spec"]["jobTemplate"]["spec"]["template"]["spec"],
    ):
        assert pod["enableServiceLinks"] is False


def test_the_cli_takes_every_generated_key_after_api_key() -> None:
    # `memorygraph --api-key KEY` takes a KEY beginning with "-" for an option, and a random
    # base64url key begins with one once in 64.
    keys = {new_api_key() for _ in range(2000)}
    assert len(keys) == 2000
    parser = build_parser()
    for key in keys:
        assert parser.parse_args(["--api-key", key, "health"]).api_key == key
