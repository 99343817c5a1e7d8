"""What the operator renders is what the data plane accepts.

The operator and the data plane meet at files and a command line: ``memorygraph.yaml`` and
``plugins.yaml`` in the ConfigMap, the container's command, the Secrets projected next to them,
the ports and the probe endpoints. These tests hold the rendered objects against the data
plane's own loaders and CLI parser, and boot the real server from a pod materialised out of
the rendered StatefulSet, ConfigMap and Secrets, probing it the way the kubelet would.
"""

from __future__ import annotations

import copy
import datetime as dt
import ipaddress
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import grpc
import pytest
import yaml
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from grpc_health.v1 import health_pb2, health_pb2_grpc
from memorygraph.cli import build_parser
from memorygraph.client import Client
from memorygraph.config import ServerConfig, load_config
from memorygraph.errors import ConfigError
from memorygraph.plugins.config import parse_plugins
from memorygraph.plugins.pipeline import PluginPipeline
from memorygraph.v1 import graph_pb2, graph_pb2_grpc
from memorygraph_operator.render import (
    GraphInputs,
    Names,
    RenderEnv,
    render_archival_cronjob,
    render_auth_secret,
    render_configmap,
    render_statefulset,
)
from memorygraph_operator.render.archival import ARCHIVAL_KEY
from test_render_golden import CASES, _graph

from tests.dataplane.vault_server import DataVault

CLIENT_KEY = "client-key-for-the-contract-test"
ARCHIVAL_API_KEY = "archival-key-for-the-contract-test"


def _rendered(case: str) -> tuple[GraphInputs, RenderEnv, dict[str, Any], dict[str, Any]]:
    manifest, plugins, env = CASES[case]
    g = _graph(manifest, plugins)
    return g, env, render_configmap(g), render_statefulset(g, env)


def _container(sts: dict[str, Any]) -> dict[str, Any]:
    containers = sts["spec"]["template"]["spec"]["containers"]
    assert len(containers) == 1
    return dict(containers[0])


def _container_port(container: dict[str, Any], port: int | str) -> int:
    """A probe's or Service's port (a number or a port name) as the container's port number."""
    if isinstance(port, int):
        return port
    by_name = {p["name"]: p["containerPort"] for p in container["ports"]}
    return int(by_name[port])


def _server_config(cm: dict[str, Any], directory: Path) -> ServerConfig:
    path = directory / "memorygraph.yaml"
    path.write_text(cm["data"]["memorygraph.yaml"])
    # No environment layer: what the pod gets is the file alone.
    return load_config(path, environ={})


def _mounted_files(cm: dict[str, Any], sts: dict[str, Any]) -> dict[str, tuple[str, str]]:
    """Every file the config volume puts into the container: path → (source name, key)."""
    container = _container(sts)
    mounts = {m["name"]: m["mountPath"] for m in container["volumeMounts"]}
    files: dict[str, tuple[str, str]] = {}
    for volume in sts["spec"]["template"]["spec"]["volumes"]:
        if "projected" not in volume:
            continue
        root = mounts[volume["name"]]
        for source in volume["projected"]["sources"]:
            kind = "configMap" if "configMap" in source else "secret"
            ref = source[kind]
            items = ref.get("items") or [{"key": k, "path": k} for k in cm["data"]]
            for item in items:
                files[f"{root}/{item['path']}"] = (f"{kind}/{ref['name']}", item["key"])
    return files


@pytest.mark.parametrize("case", list(CASES))
def test_rendered_server_config_loads_with_the_data_planes_own_loader(
    case: str, tmp_path: Path
) -> None:
    g, _, cm, sts = _rendered(case)
    config = _server_config(cm, tmp_path)
    container = _container(sts)

    assert config.port == _container_port(container, "grpc")
    assert config.metrics_port == _container_port(container, "metrics")
    assert config.durability.value == g.spec.durability.lower()
    assert config.log_level == g.spec.log_level.lower()
    assert config.auth.enabled == g.spec.auth_enabled
    assert (config.tls.cert_file is not None) == (g.spec.tls is not None)
    assert (config.registry.url is not None) == (g.spec.registry is not None)
    # SIGTERM lets in-flight calls finish; the kubelet must not SIGKILL the server before that.
    grace = sts["spec"]["template"]["spec"]["terminationGracePeriodSeconds"]
    assert config.shutdown_grace_seconds < grace


@pytest.mark.parametrize("case", list(CASES))
def test_rendered_plugins_config_builds_the_data_planes_pipeline(case: str) -> None:
    g, _, cm, _ = _rendered(case)
    plugins = parse_plugins(cm["data"]["plugins.yaml"], "rendered plugins.yaml")
    pipeline = PluginPipeline.build(plugins, count_nodes=lambda session, limit: 0)

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


# --- booting the real server from a materialised pod ------------------------------------------


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _self_signed(directory: Path) -> dict[str, bytes]:
    """A TLS Secret's data (``tls.crt``, ``tls.key``, ``ca.crt``) for a server on 127.0.0.1."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
        .sign(key, hashes.SHA256())
    )
    pem = cert.public_bytes(serialization.Encoding.PEM)
    key_pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    return {"tls.crt": pem, "tls.key": key_pem, "ca.crt": pem}


class Pod:
    """The rendered data-plane pod, run as a process the way the kubelet would run it.

    Volumes become directories (their mount paths are mapped, as a kubelet mount would), the
    projected config volume is filled from the rendered ConfigMap and Secrets, and the container
    ports are mapped to free local ports. Nothing else about the rendered objects is changed.
    """

    def __init__(self, root: Path, g: GraphInputs, cm: dict[str, Any], sts: dict[str, Any]):
        self.container = _container(sts)
        self.root = root
        self.mounts = {m["mountPath"]: root / m["name"] for m in self.container["volumeMounts"]}
        self.ports = {p["containerPort"]: _free_port() for p in self.container["ports"]}
        self.secrets = self._secrets(g)
        self.proc: subprocess.Popen[bytes] | None = None
        self.log = root / "pod.log"
        for path in self.mounts.values():
            path.mkdir(parents=True)
        for path, (source, key) in _mounted_files(cm, sts).items():
            kind, name = source.split("/", 1)
            data = cm["data"][key].encode() if kind == "configMap" else self.secrets[name][key]
            if key == "memorygraph.yaml":
                data = self._localise_config(data.decode()).encode()
            target = self.local(path)
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(data)

    def _secrets(self, g: GraphInputs) -> dict[str, dict[str, bytes]]:
        """The Secrets a user (or the operator, for API keys) would have created."""
        secrets: dict[str, dict[str, bytes]] = {}
        generated = render_auth_secret(g, CLIENT_KEY, ARCHIVAL_API_KEY)
        if generated is not None:
            secrets[Names(g.name).auth_secret] = {
                k: v.encode() for k, v in generated["stringData"].items()
            }
        elif g.spec.auth is not None and g.spec.auth.secret_ref is not None:
            # The user's own Secret, shaped as the API reference asks.
            secrets[g.spec.auth.secret_ref.name] = {
                "api-keys": f"{CLIENT_KEY}\n{ARCHIVAL_API_KEY}\n".encode(),
                ARCHIVAL_KEY: ARCHIVAL_API_KEY.encode(),
            }
        if g.spec.tls is not None:
            secrets[g.spec.tls.secret_ref.name] = _self_signed(self.root)
        if g.spec.registry is not None and g.spec.registry.secret_ref is not None:
            ref = g.spec.registry.secret_ref
            secrets[ref.name] = {ref.key: b"registry-token\n"}
        for p in g.plugins:
            if p.spec.webhook is not None and p.spec.webhook.token_secret_ref is not None:
                ref = p.spec.webhook.token_secret_ref
                secrets[ref.name] = {ref.key: b"webhook-token\n"}
        return secrets

    def local(self, path: str | Path) -> Path:
        """Where a path inside the container lives on this machine."""
        text = str(path)
        for mount, directory in sorted(self.mounts.items(), key=lambda m: -len(m[0])):
            if text == mount or text.startswith(mount + "/"):
                return directory / text[len(mount) :].lstrip("/")
        raise AssertionError(f"{text} is on the container's read-only root filesystem")

    def _localise_config(self, text: str) -> str:
        def walk(value: Any) -> Any:
            if isinstance(value, dict):
                return {k: walk(v) for k, v in value.items()}
            if isinstance(value, str) and value.startswith("/"):
                return str(self.local(value))
            return value

        config = walk(yaml.safe_load(text))
        config["port"] = self.ports[config["port"]]
        config["metrics_port"] = self.ports[config["metrics_port"]]
        return yaml.safe_dump(config)

    def start(self) -> Pod:
        command = list(self.container["command"])
        script = Path(sys.executable).parent / command[0]
        executable = [str(script)] if script.exists() else [sys.executable, "-m", "memorygraph"]
        args = [str(self.local(a)) if a.startswith("/") else a for a in command[1:]]
        env = {k: v for k, v in os.environ.items() if not k.startswith("MEMORYGRAPH_")}
        for var in self.container.get("env") or []:
            assert "valueFrom" in var and "fieldRef" in var["valueFrom"], var
            env[var["name"]] = "pod-0"  # the only downward-API field used is the pod name
        with self.log.open("wb") as log:
            self.proc = subprocess.Popen(
                executable + args,
                stdout=log,
                stderr=subprocess.STDOUT,
                env=env,
                cwd=self.root,
            )
        return self

    def stop(self) -> int:
        assert self.proc is not None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(timeout=60)

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def probe(self, probe: dict[str, Any]) -> bool:
        """One probe attempt, as the kubelet makes it."""
        assert self.proc is not None
        if self.proc.poll() is not None:
            raise AssertionError(f"the server exited ({self.proc.returncode}):\n{self.output()}")
        timeout = probe.get("timeoutSeconds", 1)
        if "httpGet" in probe:
            get = probe["httpGet"]
            port = self.ports[_container_port(self.container, get["port"])]
            url = f"http://127.0.0.1:{port}{get['path']}"
            try:
                with urllib.request.urlopen(url, timeout=timeout) as reply:
                    return 200 <= int(reply.status) < 400
            except (urllib.error.URLError, OSError):
                return False
        check = probe["grpc"]
        port = self.ports[check["port"]]
        # The kubelet's gRPC probe speaks plaintext only.
        with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
            try:
                reply = health_pb2_grpc.HealthStub(channel).Check(
                    health_pb2.HealthCheckRequest(service=check.get("service", "")),
                    timeout=timeout,
                )
            except grpc.RpcError:
                return False
        return bool(reply.status == health_pb2.HealthCheckResponse.SERVING)

    def wait_for(self, probe: dict[str, Any], seconds: float = 60) -> None:
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            if self.probe(probe):
                return
            time.sleep(0.1)
        raise AssertionError(f"probe {probe} never passed:\n{self.output()}")


@pytest.fixture
def pods(tmp_path: Path) -> Iterator[list[Pod]]:
    started: list[Pod] = []
    yield started
    for pod in started:
        if pod.proc is not None and pod.proc.poll() is None:
            pod.proc.kill()
            pod.proc.wait()


def _channel(pod: Pod, g: GraphInputs) -> grpc.Channel:
    address = f"127.0.0.1:{pod.ports[_container_port(pod.container, 'grpc')]}"
    if g.spec.tls is None:
        return grpc.insecure_channel(address)
    ca = pod.secrets[g.spec.tls.secret_ref.name]["ca.crt"]
    return grpc.secure_channel(address, grpc.ssl_channel_credentials(root_certificates=ca))


@pytest.mark.slow
@pytest.mark.parametrize("case", ["minimal", "full", "fixed-replicas"])
def test_rendered_pod_boots_the_data_plane_and_passes_its_probes(
    case: str, tmp_path: Path, pods: list[Pod]
) -> None:
    g, _, cm, sts = _rendered(case)
    pod = Pod(tmp_path, g, cm, sts)
    pods.append(pod.start())

    pod.wait_for(pod.container["startupProbe"])
    assert pod.probe(pod.container["livenessProbe"])
    pod.wait_for(pod.container["readinessProbe"], seconds=10)

    if g.spec.tls is not None and g.spec.tls.require_client_certificate:
        # Mutual TLS: the probes above are all the kubelet can do (it has no client certificate).
        assert pod.stop() == 0, pod.output()
        return
    request = graph_pb2.GetMetricsRequest()
    with _channel(pod, g) as channel:
        stub = graph_pb2_grpc.MemoryGraphServiceStub(channel)
        if g.spec.auth_enabled:
            # The key the archival CronJob presents (MEMORYGRAPH_API_KEY from the generated
            # Secret's archival key) and the client key are both accepted; no key is not.
            for key in (ARCHIVAL_API_KEY, CLIENT_KEY):
                stub.GetMetrics(request, metadata=[("authorization", f"Bearer {key}")], timeout=10)
            with pytest.raises(grpc.RpcError) as refused:
                stub.GetMetrics(request, timeout=10)
            assert refused.value.code() == grpc.StatusCode.UNAUTHENTICATED
            secret = render_auth_secret(g, CLIENT_KEY, ARCHIVAL_API_KEY)
            assert secret is not None and secret["stringData"][ARCHIVAL_KEY] == ARCHIVAL_API_KEY
        else:
            stub.GetMetrics(request, timeout=10)

    assert pod.stop() == 0, pod.output()


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


@pytest.mark.slow
@pytest.mark.parametrize("mutual", [False, True], ids=["tls", "mutual-tls"])
def test_rendered_archival_job_archives_from_the_rendered_pod(
    mutual: bool, tmp_path: Path, pods: list[Pod]
) -> None:
    """The CronJob's container, run as the kubelet would (its Secret volume mapped, its
    secretKeyRef variables filled), reaches the rendered server over (mutual) TLS with the
    archival API key and archives to the Data-Vault."""
    manifest, plugins, _ = CASES["full"]
    manifest = copy.deepcopy(manifest)
    manifest["spec"]["tls"]["requireClientCertificate"] = mutual
    # No LLM-Registry here: archival would (rightly) keep sessions with undelivered reports.
    del manifest["spec"]["registry"]
    g = _graph(manifest, plugins)
    cm, sts = render_configmap(g), render_statefulset(g, RenderEnv())
    pod = Pod(tmp_path / "pod", g, cm, sts)
    pods.append(pod.start())
    pod.wait_for(pod.container["readinessProbe"])
    address = f"127.0.0.1:{pod.ports[_container_port(pod.container, 'grpc')]}"
    tls = pod.secrets[g.spec.tls.secret_ref.name]  # type: ignore[union-attr]
    with Client(
        address,
        api_key=CLIENT_KEY,
        root_certificates=tls["ca.crt"],
        client_cert=tls["tls.crt"] if mutual else None,
        client_key=tls["tls.key"] if mutual else None,
    ) as mg:
        session = mg.create_session(title="old")
        mg.close_session(session.id)

    cronjob = render_archival_cronjob(g, RenderEnv())
    assert cronjob is not None
    job = cronjob["spec"]["jobTemplate"]["spec"]["template"]["spec"]
    (container,) = job["containers"]
    volumes = {v["name"]: v for v in job["volumes"]}
    files: dict[str, Path] = {}
    for mount in container["volumeMounts"]:
        local = tmp_path / "job" / mount["name"]
        local.mkdir(parents=True)
        secret = volumes[mount["name"]].get("secret")
        for item in secret["items"] if secret else []:
            (local / item["path"]).write_bytes(pod.secrets[secret["secretName"]][item["key"]])
        files[mount["mountPath"]] = local
    vault = DataVault(tmp_path / "vault", token="vault-token").start()
    try:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("MEMORYGRAPH_", "AWS_"))}
        for var in container["env"]:
            ref = var["valueFrom"]["secretKeyRef"]
            if ref["name"] == g.spec.archival.destination.vault.secret_ref.name:  # type: ignore[union-attr]
                env[var["name"]] = "vault-token"
            else:
                env[var["name"]] = pod.secrets[ref["name"]][ref["key"]].decode()

        def local(arg: str) -> str:
            for mount, directory in files.items():
                if arg.startswith(mount + "/"):
                    return str(directory / arg[len(mount) + 1 :])
            return arg

        args = [local(a) for a in container["args"]]
        args[args.index("--server") + 1] = address  # the Service's name, resolved
        args[args.index("--vault-url") + 1] = vault.url
        run = subprocess.run(
            [sys.executable, "-m", "memorygraph", *args, "--older-than", "0s"],
            capture_output=True,
            text=True,
            env=env,
            timeout=120,
        )
        assert run.returncode == 0, run.stdout + run.stderr
        assert "1 archived" in run.stdout, run.stdout
        assert len(vault.ids()) == 1
    finally:
        vault.stop()
    assert pod.stop() == 0, pod.output()
