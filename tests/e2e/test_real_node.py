"""The real node itself: its network stays inside its namespace, and taking a node down leaves
nothing behind on the machine. These look at the machine, so they need the cluster's own harness
(hack/cluster.sh and hack/node.sh), not just any cluster."""

from __future__ import annotations

import ipaddress
import json
import os
import socket
import subprocess
from pathlib import Path
from urllib.parse import urlparse

import pytest
from e2e_support import ROOT, Cluster, eventually
from real_pods import REAL_NODE_KEY, TOLERATIONS, ClientPod, RealNode, running_pod

NODE_SH = str(ROOT / "hack" / "node.sh")
LEFTOVERS_SH = str(ROOT / "hack" / "leftovers.sh")

# Asks the API server for its version through the `kubernetes` Service, with the pod's token.
API_CHECK = """
import ssl, urllib.request
sa = "/var/run/secrets/kubernetes.io/serviceaccount/"
ctx = ssl.create_default_context(cafile=sa + "ca.crt")
req = urllib.request.Request("https://kubernetes.default.svc/version",
                             headers={"Authorization": "Bearer " + open(sa + "token").read()})
print(urllib.request.urlopen(req, context=ctx, timeout=10).status)
"""
# Tries to open a connection; prints the exception's name, or "connected".
CONNECT = """
import socket, sys
try:
    socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=5)
    print("connected")
except OSError as exc:
    print(type(exc).__name__)
"""
RESOLVE = """
import socket, sys
try:
    print(socket.getaddrinfo(sys.argv[1], 443)[0][4][0])
except OSError as exc:
    print(type(exc).__name__)
"""


@pytest.fixture(scope="session")
def harness_state(kubeconfig: str) -> Path:
    """The state directory of the cluster hack/cluster.sh started (the kubeconfig's)."""
    state = Path(kubeconfig).parent
    if not (state / "images").is_file() or not (state / "nodes").is_dir():
        pytest.skip(f"{kubeconfig} is not a cluster started by hack/cluster.sh")
    return state


def _host_addresses() -> list[ipaddress.IPv4Interface]:
    out = subprocess.run(
        ["ip", "-o", "-4", "addr", "show"], capture_output=True, text=True, check=True
    ).stdout
    return [ipaddress.IPv4Interface(line.split()[3]) for line in out.splitlines()]


def test_the_node_and_its_pods_are_reachable_only_inside_its_network_namespace(
    real_node: RealNode, cluster: Cluster, pods_namespace: str, harness_state: Path
) -> None:
    node = cluster.get("node", real_node.name)
    assert node is not None
    (node_ip,) = (a["address"] for a in node["status"]["addresses"] if a["type"] == "InternalIP")
    client = ClientPod(cluster, pods_namespace, real_node.images["memorygraph"]).start()
    pod_ip = running_pod(cluster, pods_namespace, client.name)["status"]["podIP"]

    host = _host_addresses()
    assert not {str(a.ip) for a in host} & {node_ip, pod_ip}
    # The one address outside the namespace: the host end of the node's veth pair.
    (host_end,) = (a.ip for a in host if ipaddress.ip_address(node_ip) in a.network)

    # From a pod: the API server through the `kubernetes` Service, nothing else of the host. A
    # port open on the host end stays closed to the pod: the node's namespace refuses to send.
    assert client.run("python", "-c", API_CHECK).stdout.strip() == "200"
    with socket.create_server((str(host_end), 0)) as listener:
        port = str(listener.getsockname()[1])
        tried = client.run("python", "-c", CONNECT, str(host_end), port)
    assert tried.stdout.strip() == "ConnectionRefusedError", tried
    # Names outside the cluster are not looked up anywhere.
    assert client.run("python", "-c", RESOLVE, "example.com").stdout.strip() == "gaierror"
    service = client.run("python", "-c", RESOLVE, "kubernetes.default.svc").stdout.strip()
    assert service == "10.96.0.1"


def test_a_node_taken_down_leaves_the_machine_as_it_was(
    real_node: RealNode, cluster: Cluster, namespace: str, harness_state: Path, tmp_path: Path
) -> None:
    server = urlparse(
        json.loads(cluster.kubectl("config", "view", "-o", "json"))["clusters"][0]["cluster"][
            "server"
        ]
    )
    env = {
        **os.environ,
        "E2E_STATE": str(harness_state),
        "E2E_APISERVER_PORT": str(server.port),
        "E2E_NODE_VOLUMES": "0",
    }
    images = {
        line.split()[0]: line.split()[1:]
        for line in (harness_state / "images").read_text().splitlines()
    }
    pause, pause_archive = images["pause"]
    before = tmp_path / "before"
    subprocess.run(["bash", LEFTOVERS_SH, "snapshot", str(before)], check=True)

    name = "probe-node"
    markers = subprocess.run(
        ["bash", NODE_SH, "names", name], env=env, capture_output=True, text=True, check=True
    ).stdout.split()
    up = subprocess.run(
        ["bash", NODE_SH, "up", name, pause_archive],
        env={**env, "PAUSE_IMAGE": pause},
        capture_output=True,
        text=True,
    )
    try:
        assert up.returncode == 0, up.stderr
        node = cluster.get("node", name)
        assert node is not None and node["metadata"]["labels"][REAL_NODE_KEY] == "real"
        # A pod with what the kubelet mounts for it (a service account token, an emptyDir).
        cluster.apply(
            {
                "apiVersion": "v1",
                "kind": "Pod",
                "metadata": {"name": "sleeper", "namespace": namespace},
                "spec": {
                    "nodeSelector": {"kubernetes.io/hostname": name},
                    "tolerations": TOLERATIONS,
                    "containers": [
                        {
                            "name": "pause",
                            "image": pause,
                            "imagePullPolicy": "Never",
                            "volumeMounts": [{"name": "scratch", "mountPath": "/scratch"}],
                        }
                    ],
                    "volumes": [{"name": "scratch", "emptyDir": {}}],
                },
            }
        )
        running_pod(cluster, namespace, "sleeper")
    finally:
        down = subprocess.run(
            ["bash", NODE_SH, "down", name], env=env, capture_output=True, text=True
        )
    assert down.returncode == 0, down.stdout + down.stderr
    compared = subprocess.run(
        ["bash", LEFTOVERS_SH, "compare", str(before), *markers], capture_output=True, text=True
    )
    assert compared.returncode == 0, compared.stdout
    eventually(lambda: cluster.get("node", name) is None, "the Node object deleted")
