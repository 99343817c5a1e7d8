"""The data plane booted from the rendered pod, probed as the kubelet would, archiving."""

from __future__ import annotations

import copy
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import grpc
import pytest
from memorygraph.client import Client
from memorygraph.v1 import graph_pb2, graph_pb2_grpc
from memorygraph_operator.render import (
    GraphInputs,
    RenderEnv,
    render_archival_cronjob,
    render_auth_secret,
    render_configmap,
    render_statefulset,
)
from memorygraph_operator.render.archival import ARCHIVAL_KEY
from rendered_pod import (
    ARCHIVAL_API_KEY,
    CLIENT_KEY,
    VAULT_TOKEN,
    Pod,
    _container_port,
    _rendered,
)
from test_render_golden import CASES, _graph

from tests.dataplane.vault_server import DataVault


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


def _job_files(
    job: dict[str, Any], container: dict[str, Any], pod: Pod, root: Path
) -> dict[str, Path]:
    """The job's volumes as the kubelet fills them: mount path → local directory."""
    volumes = {v["name"]: v for v in job["volumes"]}
    files: dict[str, Path] = {}
    for mount in container["volumeMounts"]:
        local = root / mount["name"]
        local.mkdir(parents=True)
        files[mount["mountPath"]] = local
        for source in volumes[mount["name"]].get("projected", {}).get("sources", []):
            ref = source["secret"]
            data = pod.secrets.get(ref["name"], {})
            for item in ref["items"]:
                if item["key"] not in data:
                    assert ref.get("optional"), f"{ref['name']} has no key {item['key']}"
                    continue
                target = local / item["path"]
                target.parent.mkdir(parents=True, exist_ok=True)
                target.write_bytes(data[item["key"]])
    return files


@pytest.mark.slow
@pytest.mark.parametrize("mutual", [False, True], ids=["tls", "mutual-tls"])
def test_rendered_archival_job_archives_from_the_rendered_pod(
    mutual: bool, tmp_path: Path, pods: list[Pod]
) -> None:
    """The CronJob's container, run as the kubelet would (its secret volume filled, no
    credential in its environment), reaches the rendered server over (mutual) TLS with the
    archival API key and, with mutual TLS, a client certificate of its own, and archives to the
    Data-Vault with the token read from its file."""
    manifest, plugins, _ = CASES["full"]
    manifest = copy.deepcopy(manifest)
    manifest["spec"]["tls"]["requireClientCertificate"] = mutual
    if mutual:
        manifest["spec"]["archival"]["clientCertificateSecretRef"] = {"name": "archival-client"}
    # No LLM-Registry here: archival would (rightly) keep sessions with undelivered reports.
    del manifest["spec"]["registry"]
    g = _graph(manifest, plugins)
    cm, sts = render_configmap(g), render_statefulset(g, RenderEnv())
    pod = Pod(tmp_path / "pod", g, cm, sts)
    pods.append(pod.start())
    pod.wait_for(pod.container["readinessProbe"])
    address = f"127.0.0.1:{pod.ports[_container_port(pod.container, 'grpc')]}"
    tls = pod.secrets[g.spec.tls.secret_ref.name]  # type: ignore[union-attr]
    client = pod.secrets.get("archival-client", {})
    with Client(
        address,
        api_key=CLIENT_KEY,
        root_certificates=tls["ca.crt"],
        client_cert=client.get("tls.crt"),
        client_key=client.get("tls.key"),
    ) as mg:
        session = mg.create_session(title="old")
        mg.close_session(session.id)

    cronjob = render_archival_cronjob(g, RenderEnv())
    assert cronjob is not None
    job = cronjob["spec"]["jobTemplate"]["spec"]["template"]["spec"]
    (container,) = job["containers"]
    assert "env" not in container  # every secret is a file
    files = _job_files(job, container, pod, tmp_path / "job")
    # The job never holds the server's key, with mutual TLS or without.
    held = [f.read_bytes() for d in files.values() for f in d.rglob("*") if f.is_file()]
    assert tls["tls.key"] not in held and ARCHIVAL_API_KEY.encode() in held
    vault = DataVault(tmp_path / "vault", token=VAULT_TOKEN).start()
    try:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("MEMORYGRAPH_", "AWS_"))}

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
