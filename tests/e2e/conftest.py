"""Fixtures of the end-to-end tier: a real cluster, the chart installed, the operator running.

The cluster is the one ``$KUBECONFIG`` names (kind, a shared dev cluster, ``make cluster-up``),
or else one this session starts with ``hack/cluster.sh`` from binaries built from Go modules
(``make e2e-build``). With neither, the tier is skipped with the reason, except in CI
(``CI=true``), where that is a failure.

The operator runs either as a local process (``operator``: the tests that watch it closely, with
the graphs' pods on kwok nodes) or in the cluster from the chart with its own image
(``cluster_operator``: the tests whose pods really run on the real node). Never both at once:
two operators would fight over the same objects. The tests are ordered so that the switch
happens once.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from e2e_support import (
    CACHE,
    CHART,
    E2E_BIN,
    OPERATOR_NAMESPACE,
    RELEASE,
    ROOT,
    Cluster,
    OperatorProcess,
    free_port,
)
from real_pods import NAMESPACE_ANNOTATIONS, NODE_SELECTOR, TOLERATIONS, RealNode, find_real_node

LEFTOVERS = ("bash", str(ROOT / "hack" / "leftovers.sh"))
CLUSTER_BINARIES = ("etcd", "kube-apiserver", "kube-controller-manager", "kube-scheduler", "kwok")
# The real node's (hack/cluster.sh leaves it out with E2E_REAL_NODE=0).
NODE_BINARIES = ("kubelet", "kube-proxy", "coredns")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    here = Path(__file__).parent
    for item in items:
        if here in Path(str(item.fspath)).parents:
            item.add_marker(pytest.mark.e2e)
    # Within the tier, the tests with the operator in the cluster last: the operator changes
    # hands once.
    tier = [i for i in items if here in Path(str(i.fspath)).parents]
    if tier:
        start = items.index(tier[0])
        rest = [i for i in items if here not in Path(str(i.fspath)).parents]
        tier.sort(key=lambda item: "cluster_operator" in getattr(item, "fixturenames", ()))
        items[:] = rest[:start] + tier + rest[start:]


def _unavailable(reason: str) -> None:
    message = f"END-TO-END TIER NOT RUN: {reason}"
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(message + " (CI=true: the end-to-end tier must run)", pytrace=False)
    pytest.skip(message)


@pytest.fixture(scope="session")
def kubeconfig(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A kubeconfig with cluster-admin rights: $KUBECONFIG, or a cluster started here."""
    given = os.environ.get("KUBECONFIG")
    if given:
        yield given
        return
    wanted = CLUSTER_BINARIES
    if os.environ.get("E2E_REAL_NODE", "1") != "0":
        wanted += NODE_BINARIES
    missing = [b for b in wanted if not (E2E_BIN / b).is_file()]
    if missing:
        if shutil.which("go") is None:
            _unavailable("no KUBECONFIG given and no Go toolchain to build a control plane")
        _unavailable(
            f"no KUBECONFIG given and {', '.join(missing)} not built in {E2E_BIN}: "
            "run `make e2e-build` (or `make e2e`)"
        )
    if wanted != CLUSTER_BINARIES:
        # The project's image is rebuilt whenever its sources change.
        images = subprocess.run(
            ["bash", str(ROOT / "hack" / "images.sh"), "--check"], capture_output=True, text=True
        )
        if images.returncode != 0:
            _unavailable(f"the real node's images are not built: {images.stderr.strip()}")
    # A state directory and ports of its own, so neither a cluster from `make cluster-up` nor
    # another test session on the same machine gets in the way.
    state = CACHE / "e2e" / "clusters" / f"pytest-{os.getpid()}"
    snapshot = tmp_path_factory.mktemp("machine") / "before"
    subprocess.run([*LEFTOVERS, "snapshot", str(snapshot)], check=True)
    env = {
        **os.environ,
        "E2E_STATE": str(state),
        "E2E_NO_BUILD": "1",
        "E2E_ETCD_PORT": str(free_port()),
        "E2E_ETCD_PEER_PORT": str(free_port()),
        "E2E_APISERVER_PORT": str(free_port()),
    }
    script = str(ROOT / "hack" / "cluster.sh")
    up = subprocess.run(["bash", script, "up"], env=env, capture_output=True, text=True)
    if up.returncode != 0:
        logs = "".join(
            f"--- {log.name}\n{log.read_text(errors='replace')[-3000:]}\n"
            for log in sorted((state / "logs").glob("*.log"))
        )
        subprocess.run(["bash", script, "down"], env=env, check=False, capture_output=True)
        pytest.fail(f"hack/cluster.sh up failed:\n{up.stderr}\n{logs}", pytrace=False)
    try:
        yield up.stdout.strip().splitlines()[-1]
    finally:
        _tear_down(script, env, state, snapshot)


def _tear_down(script: str, env: dict[str, str], state: Path, snapshot: Path) -> None:
    """Stop the cluster, then fail if anything of it is still on the machine."""
    node = ["bash", str(ROOT / "hack" / "node.sh")]
    markers = [str(state)]
    for node_dir in sorted((state / "nodes").glob("*")):
        markers += subprocess.run(
            [*node, "names", node_dir.name], env=env, capture_output=True, text=True
        ).stdout.split()
    down = subprocess.run(["bash", script, "down"], env=env, capture_output=True, text=True)
    left = subprocess.run(
        [*LEFTOVERS, "compare", str(snapshot), *markers],
        capture_output=True,
        text=True,
    )
    if down.returncode != 0 or left.returncode != 0:
        pytest.fail(
            f"the cluster left things behind:\n{down.stderr}\n{left.stdout}{left.stderr}",
            pytrace=False,
        )


@pytest.fixture(scope="session")
def cluster(kubeconfig: str) -> Cluster:
    return Cluster(kubeconfig)


def _install_chart(cluster: Cluster, *values: str) -> None:
    cluster.helm(
        "upgrade",
        "--install",
        RELEASE,
        str(CHART),
        "--namespace",
        OPERATOR_NAMESPACE,
        "--create-namespace",
        "--wait",
        "--timeout",
        "3m",
        *values,
    )


@pytest.fixture(scope="session")
def installed(cluster: Cluster) -> Iterator[Cluster]:
    """The chart installed (CRDs, RBAC, service account; its Deployment runs on a fake node)."""
    _install_chart(cluster)
    yield cluster
    # The CRDs stay (helm.sh/resource-policy: keep) like they would for a user.
    cluster.helm("uninstall", RELEASE, "--namespace", OPERATOR_NAMESPACE, "--wait")


def _service_account_kubeconfig(cluster: Cluster, path: Path) -> Path:
    """A kubeconfig that authenticates as the chart's service account (a bound token)."""
    token = cluster.kubectl(
        "create", "token", RELEASE, "-n", OPERATOR_NAMESPACE, "--duration", "6h"
    ).strip()
    view = cluster.kubectl("config", "view", "--minify", "--raw", "-o", "json")
    config = json.loads(view)
    cluster_entry = config["clusters"][0]
    config["users"] = [{"name": "operator", "user": {"token": token}}]
    config["contexts"] = [
        {"name": "operator", "context": {"cluster": cluster_entry["name"], "user": "operator"}}
    ]
    config["current-context"] = "operator"
    path.write_text(json.dumps(config))
    path.chmod(0o600)
    return path


class Operators:
    """Which operator reconciles: the local process, or the chart's Deployment on the real node."""

    def __init__(self, cluster: Cluster, local: OperatorProcess) -> None:
        self.cluster = cluster
        self.local = local
        self.in_cluster: RealNode | None = None

    def use_local(self) -> OperatorProcess:
        if self.in_cluster is not None:
            # The chart's defaults again: its Deployment back on a kwok node, where it never runs.
            _install_chart(self.cluster)
            self.in_cluster = None
        if self.local.proc is None or self.local.proc.poll() is not None:
            self.local.start()
        return self.local

    def use_in_cluster(self, node: RealNode) -> RealNode:
        if self.in_cluster is None:
            self.local.stop()
            repository, _, tag = node.images["memorygraph"].rpartition(":")
            _install_chart(
                self.cluster,
                "--set",
                f"image.repository={repository}",
                "--set",
                f"image.tag={tag}",
                "--set",
                "verbose=true",
                "--set-json",
                f"nodeSelector={json.dumps(NODE_SELECTOR)}",
                "--set-json",
                f"tolerations={json.dumps(TOLERATIONS)}",
            )
            self.in_cluster = node
        return node


@pytest.fixture(scope="session")
def operators(installed: Cluster, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Operators]:
    directory = tmp_path_factory.mktemp("operator")
    sa_config = _service_account_kubeconfig(installed, directory / "kubeconfig")
    # Kept outside pytest's temporary directories, which later sessions prune.
    logs = CACHE / "e2e" / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    local = OperatorProcess(str(sa_config), logs / f"operator-{os.getpid()}.log")
    yield Operators(installed, local)
    local.stop()
    print(f"operator log: {local.log_path}")


@pytest.fixture
def operator(operators: Operators) -> OperatorProcess:
    """The operator as a local process with only the chart's RBAC (its service account)."""
    return operators.use_local()


@pytest.fixture(scope="session")
def real_node(cluster: Cluster) -> RealNode:
    """A node that runs containers, and the images it holds."""
    node = find_real_node(cluster)
    if node is None:
        _unavailable(
            "the cluster has no Ready node labelled memorygraph.io/node=real with the "
            "ConfigMap kube-public/memorygraph-e2e-images (docs/e2e.md)"
        )
    assert node is not None
    return node


@pytest.fixture
def cluster_operator(operators: Operators, real_node: RealNode) -> RealNode:
    """The operator running in the cluster from the chart, with the project's image, on the real
    node; the graphs it creates default to that image."""
    return operators.use_in_cluster(real_node)


def _namespace_name(request: pytest.FixtureRequest) -> str:
    words = re.sub(r"[^a-z0-9]+", "-", request.node.name.removeprefix("test_").lower())
    return f"e2e-{words[:40].strip('-')}-{uuid.uuid4().hex[:5]}"


@pytest.fixture
def namespace(cluster: Cluster, request: pytest.FixtureRequest) -> Iterator[str]:
    """A fresh namespace per test, deleted afterwards (without waiting)."""
    name = _namespace_name(request)
    cluster.kubectl("create", "namespace", name)
    yield name
    cluster.kubectl("delete", "namespace", name, "--wait=false", "--ignore-not-found")


@pytest.fixture
def pods_namespace(
    cluster: Cluster, real_node: RealNode, request: pytest.FixtureRequest
) -> Iterator[str]:
    """A fresh namespace whose every pod runs on the real node (also those of Jobs the operator
    creates), deleted afterwards (without waiting)."""
    name = _namespace_name(request)
    cluster.apply(
        {
            "apiVersion": "v1",
            "kind": "Namespace",
            "metadata": {"name": name, "annotations": NAMESPACE_ANNOTATIONS},
        }
    )
    yield name
    cluster.kubectl("delete", "namespace", name, "--wait=false", "--ignore-not-found")
