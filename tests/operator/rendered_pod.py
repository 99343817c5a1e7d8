"""The rendered data-plane pod: read from the rendered objects, and run as the kubelet would."""

from __future__ import annotations

import dataclasses
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import grpc
import yaml
from grpc_health.v1 import health_pb2, health_pb2_grpc
from memorygraph_operator.render import (
    GraphInputs,
    Names,
    RenderEnv,
    ShardMap,
    render_auth_secret,
    render_configmap,
    render_peer_secret,
    render_shard_map,
    render_statefulset,
)
from memorygraph_operator.render.archival import ARCHIVAL_KEY
from test_render_golden import CASES, _graph

from tests.dataplane.certs import Authority

CLIENT_KEY = "client-key-for-the-contract-test"
ARCHIVAL_API_KEY = "archival-key-for-the-contract-test"
VAULT_TOKEN = "vault-token-for-the-contract-test"
PEER_KEY = "peer-key-for-the-contract-test"


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


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _server_tls(authority: Authority) -> dict[str, bytes]:
    """A TLS Secret's data (``tls.crt``, ``tls.key``, ``ca.crt``) for a server on 127.0.0.1."""
    issued = authority.issue("server", server=True)
    return {
        "tls.crt": issued.cert.read_bytes(),
        "tls.key": issued.key.read_bytes(),
        "ca.crt": authority.files.cert.read_bytes(),
    }


def _client_tls(authority: Authority, stem: str) -> dict[str, bytes]:
    """A ``kubernetes.io/tls`` Secret's data for a client certificate the same CA issued."""
    issued = authority.issue(stem, server=False, common_name=stem)
    return {"tls.crt": issued.cert.read_bytes(), "tls.key": issued.key.read_bytes()}


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
        configmaps = {cm["metadata"]["name"]: cm["data"]}
        if g.shard_map is not None:
            # It runs alone here: every shard on it, as on the one pod of a graph made before
            # maps (a graph's other pods are not started).
            alone = ShardMap(1, (0,) * len(g.shard_map.owners), g.shard_map.members)
            g = dataclasses.replace(g, shard_map=alone)
        shard_map = render_shard_map(g)
        if shard_map is not None:
            configmaps[shard_map["metadata"]["name"]] = shard_map["data"]
        for path, (source, key) in _mounted_files(cm, sts).items():
            kind, name = source.split("/", 1)
            if kind == "configMap":
                data = configmaps[name][key].encode()
            else:
                data = self.secrets[name][key]
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
        peer = render_peer_secret(g, PEER_KEY)
        if peer is not None:
            secrets[Names(g.name).peer_secret] = {
                k: v.encode() for k, v in peer["stringData"].items()
            }
        if g.spec.tls is not None:
            pki = self.root / "pki"
            pki.mkdir(parents=True)
            authority = Authority(pki, "graph-ca")
            secrets[g.spec.tls.secret_ref.name] = _server_tls(authority)
            archival = g.spec.archival
            if archival is not None and archival.client_certificate_secret_ref is not None:
                name = archival.client_certificate_secret_ref.name
                secrets[name] = _client_tls(authority, name)
        if g.spec.archival is not None and g.spec.archival.destination.vault is not None:
            ref = g.spec.archival.destination.vault.secret_ref
            secrets[ref.name] = {ref.key: f"{VAULT_TOKEN}\n".encode()}
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
        if "cluster" in config:
            config["cluster"]["peer_port"] = self.ports[config["cluster"]["peer_port"]]
        return yaml.safe_dump(config)

    def start(self) -> Pod:
        command = list(self.container["command"])
        script = Path(sys.executable).parent / command[0]
        executable = [str(script)] if script.exists() else [sys.executable, "-m", "memorygraph"]
        args = [str(self.local(a)) if a.startswith("/") else a for a in command[1:]]
        env = {k: v for k, v in os.environ.items() if not k.startswith("MEMORYGRAPH_")}
        for var in self.container.get("env") or []:
            if "value" in var:
                env[var["name"]] = var["value"]
                continue
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
