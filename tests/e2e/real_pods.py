"""Helpers of the tests whose pods really run: placement on the real node, client pods, MinIO.

Pods on the kwok nodes never start a container, so a test that needs the data plane to serve
runs its pods on a node that runs containers. Such a node carries the label and the NoSchedule
taint ``memorygraph.io/node=real`` (``hack/node.sh`` registers it so); a pod lands there only
when it says so, with :data:`NODE_SELECTOR` and :data:`TOLERATIONS`. The images the node holds
are listed in the ConfigMap ``kube-public/memorygraph-e2e-images`` (keys ``memorygraph``,
``memorygraph-next``, ``minio``): there is no registry to pull from.
"""

from __future__ import annotations

import base64
import json
import subprocess
from dataclasses import dataclass
from typing import Any

from e2e_support import Cluster, condition, eventually, tool

REAL_NODE_KEY = "memorygraph.io/node"
REAL_NODE_VALUE = "real"
NODE_SELECTOR = {REAL_NODE_KEY: REAL_NODE_VALUE}
TOLERATIONS = [
    {"key": REAL_NODE_KEY, "operator": "Equal", "value": REAL_NODE_VALUE, "effect": "NoSchedule"}
]
IMAGES_CONFIGMAP = ("kube-public", "memorygraph-e2e-images")
# Directories of the real node offered as volumes; the kwok tier's hostPath volumes are created
# root-owned 0750, which the data plane (uid 65532) cannot write.
STORAGE_CLASS = "node-local"

# Namespace annotations with which the API server's PodNodeSelector and PodTolerationRestriction
# admission plugins place every pod of the namespace on the real node, also pods whose spec the
# test does not write (the archival CronJob's).
NAMESPACE_ANNOTATIONS = {
    "scheduler.alpha.kubernetes.io/node-selector": f"{REAL_NODE_KEY}={REAL_NODE_VALUE}",
    "scheduler.alpha.kubernetes.io/defaultTolerations": json.dumps(TOLERATIONS),
}


@dataclass(frozen=True)
class RealNode:
    """The node whose pods run, and the images it holds."""

    name: str
    images: dict[str, str]


def find_real_node(cluster: Cluster) -> RealNode | None:
    """The first Ready real node with its images, or None when the cluster has none."""
    out = cluster.kubectl("get", "nodes", "-l", f"{REAL_NODE_KEY}={REAL_NODE_VALUE}", "-o", "json")
    ready = [
        n["metadata"]["name"]
        for n in json.loads(out)["items"]
        if condition(n, "Ready").get("status") == "True"
    ]
    images = cluster.get("configmap", IMAGES_CONFIGMAP[1], IMAGES_CONFIGMAP[0])
    if not ready or images is None:
        return None
    return RealNode(ready[0], dict(images["data"]))


def on_real_node(pod_spec: dict[str, Any]) -> dict[str, Any]:
    """``pod_spec`` asking for the real node."""
    return {**pod_spec, "nodeSelector": NODE_SELECTOR, "tolerations": TOLERATIONS}


def graph_manifest(namespace: str, name: str, **spec: Any) -> dict[str, Any]:
    """A MemoryGraph whose pods run on the real node, its volume one of the node's."""
    spec.setdefault("storage", {"size": "1Gi", "storageClassName": STORAGE_CLASS})
    spec.setdefault("podTemplate", {"nodeSelector": NODE_SELECTOR, "tolerations": TOLERATIONS})
    return {
        "apiVersion": "memorygraph.io/v1alpha1",
        "kind": "MemoryGraph",
        "metadata": {"name": name, "namespace": namespace},
        "spec": spec,
    }


def running_pod(
    cluster: Cluster, namespace: str, name: str, timeout: float = 120
) -> dict[str, Any]:
    """The pod once Ready; fails with its status (and last log lines) otherwise."""

    def probe() -> dict[str, Any] | None:
        pod = cluster.get("pod", name, namespace)
        if pod and condition(pod, "Ready").get("status") == "True":
            return pod
        return None

    try:
        return eventually(probe, f"pod {namespace}/{name} Ready", timeout=timeout)
    except AssertionError as exc:
        raise AssertionError(f"{exc}\n{describe(cluster, namespace, name)}") from None


def describe(cluster: Cluster, namespace: str, pod: str) -> str:
    """What a failure message needs about a pod: its status and the end of its log."""
    parts = []
    for args in (("describe", "pod", pod), ("logs", pod, "--all-containers", "--tail", "30")):
        try:
            parts.append(cluster.kubectl(*args, "-n", namespace))
        except Exception as exc:  # the report must not hide the original failure
            parts.append(f"({' '.join(args)}: {exc})")
    return "\n".join(parts)


@dataclass
class Exec:
    """What a command run in a pod gave back."""

    code: int
    stdout: str
    stderr: str

    def json(self) -> Any:
        assert self.code == 0, f"exit code {self.code}: {self.stderr}"
        return json.loads(self.stdout)


def exec_in(
    cluster: Cluster,
    namespace: str,
    pod: str,
    *command: str,
    stdin: str | None = None,
    timeout: float = 120,
) -> Exec:
    """``command`` in the pod (``kubectl exec``); its exit code, never an exception for a
    non-zero one."""
    cmd = [tool("kubectl"), "--kubeconfig", cluster.kubeconfig, "exec", "-n", namespace]
    cmd += [*(["-i"] if stdin is not None else []), pod, "--", *command]
    proc = subprocess.run(cmd, input=stdin, capture_output=True, text=True, timeout=timeout)
    return Exec(proc.returncode, proc.stdout, proc.stderr)


class ClientPod:
    """A pod with the project's image and nothing running but ``sleep``: commands run in it
    with ``kubectl exec``, so every call they make crosses the pod network for real."""

    def __init__(
        self,
        cluster: Cluster,
        namespace: str,
        image: str,
        name: str = "client",
        env: dict[str, str] | None = None,
        secrets: dict[str, str] | None = None,
    ) -> None:
        self.cluster = cluster
        self.namespace = namespace
        self.name = name
        self.image = image
        self.env = env or {}
        # Secret name -> mount path.
        self.secrets = secrets or {}

    def manifest(self) -> dict[str, Any]:
        container: dict[str, Any] = {
            "name": "client",
            "image": self.image,
            "command": ["sleep", "infinity"],
            "env": [{"name": k, "value": v} for k, v in self.env.items()],
            "securityContext": {
                "allowPrivilegeEscalation": False,
                "readOnlyRootFilesystem": True,
                "capabilities": {"drop": ["ALL"]},
            },
            "volumeMounts": [{"name": "tmp", "mountPath": "/tmp"}]
            + [{"name": s, "mountPath": p, "readOnly": True} for s, p in self.secrets.items()],
        }
        volumes: list[dict[str, Any]] = [{"name": "tmp", "emptyDir": {}}]
        volumes += [{"name": s, "secret": {"secretName": s}} for s in self.secrets]
        spec = {
            "containers": [container],
            "volumes": volumes,
            "terminationGracePeriodSeconds": 0,
            "securityContext": {
                "runAsNonRoot": True,
                "runAsUser": 65532,
                "seccompProfile": {"type": "RuntimeDefault"},
            },
        }
        return {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {"name": self.name, "namespace": self.namespace},
            "spec": on_real_node(spec),
        }

    def start(self) -> ClientPod:
        self.cluster.apply(self.manifest())
        running_pod(self.cluster, self.namespace, self.name)
        return self

    def run(self, *command: str, stdin: str | None = None, timeout: float = 120) -> Exec:
        """``command`` in the pod."""
        return exec_in(
            self.cluster, self.namespace, self.name, *command, stdin=stdin, timeout=timeout
        )

    def memorygraph(self, server: str, *args: str) -> Exec:
        """The ``memorygraph`` command against ``server`` (``--api-key``, TLS flags in args)."""
        return self.run("memorygraph", "--server", server, *args)


def deploy(cluster: Cluster, namespace: str, name: str, pod: dict[str, Any], port: int) -> str:
    """A Deployment of ``pod`` (labelled ``app: <name>``) and a Service of its ``port``, both
    called ``name``, once the rollout is done; the Service's ``host:port`` inside the cluster."""
    labels = {"app": name}
    cluster.apply(
        {
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": {"name": name, "namespace": namespace},
            "spec": {
                "selector": {"matchLabels": labels},
                "template": {"metadata": {"labels": labels}, "spec": pod},
            },
        }
    )
    cluster.apply(
        {
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": {"name": name, "namespace": namespace},
            "spec": {"selector": labels, "ports": [{"port": port, "targetPort": port}]},
        }
    )
    cluster.kubectl("rollout", "status", f"deployment/{name}", "-n", namespace, "--timeout=120s")
    return f"{name}.{namespace}.svc:{port}"


def deploy_minio(cluster: Cluster, namespace: str, image: str, user: str, password: str) -> str:
    """MinIO (built from its Go module) on the real node; its S3 endpoint inside the cluster."""
    pod = on_real_node(
        {
            "containers": [
                {
                    "name": "minio",
                    "image": image,
                    "args": ["server", "/data", "--address", ":9000"],
                    "env": [
                        {"name": "MINIO_ROOT_USER", "value": user},
                        {"name": "MINIO_ROOT_PASSWORD", "value": password},
                        {"name": "HOME", "value": "/tmp"},
                    ],
                    "ports": [{"containerPort": 9000}],
                    "readinessProbe": {
                        "httpGet": {"path": "/minio/health/ready", "port": 9000},
                        "periodSeconds": 2,
                    },
                    "volumeMounts": [
                        {"name": "data", "mountPath": "/data"},
                        {"name": "tmp", "mountPath": "/tmp"},
                    ],
                }
            ],
            "volumes": [{"name": "data", "emptyDir": {}}, {"name": "tmp", "emptyDir": {}}],
        }
    )
    return f"http://{deploy(cluster, namespace, 'minio', pod, 9000)}"


def probe_results(cluster: Cluster, node: str, namespace: str, pod: str) -> dict[str, float]:
    """How often the kubelet ran each probe of the pod, by ``"<Type>/<result>"``
    (``Readiness/successful``, ``Startup/failed``, ...), from its probe metrics."""
    text = cluster.kubectl("get", "--raw", f"/api/v1/nodes/{node}/proxy/metrics/probes")
    counts: dict[str, float] = {}
    for line in text.splitlines():
        if not line.startswith("prober_probe_total{"):
            continue
        labels_text, _, value = line.removeprefix("prober_probe_total{").rpartition("} ")
        labels = dict(
            part.split("=", 1) for part in labels_text.replace('"', "").split(",") if "=" in part
        )
        if labels.get("namespace") == namespace and labels.get("pod") == pod:
            key = f"{labels['probe_type']}/{labels['result']}"
            counts[key] = counts.get(key, 0.0) + float(value)
    return counts


def secret_value(cluster: Cluster, namespace: str, name: str, key: str) -> str:
    """One value of a Secret, decoded."""
    secret = cluster.get("secret", name, namespace)
    assert secret is not None, f"no Secret {namespace}/{name}"
    return base64.b64decode(secret["data"][key]).decode()


def api_key_args(cluster: Cluster, namespace: str, graph: str) -> tuple[str]:
    """`--api-key=<key>` with the first key of the Secret the operator generated for `graph`
    (one argument: a key may begin with "-")."""
    key = secret_value(cluster, namespace, f"{graph}-api-keys", "api-keys").split()[0]
    return (f"--api-key={key}",)
