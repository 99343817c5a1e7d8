"""Fixtures of the end-to-end tier: a real cluster, the chart installed, the operator running.

The cluster is the one ``$KUBECONFIG`` names (kind, a shared dev cluster, ``make cluster-up``),
or else one this session starts with ``hack/cluster.sh`` from binaries built from Go modules
(``make e2e-build``). With neither, the tier is skipped with the reason, except in CI
(``CI=true``), where that is a failure.
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

CLUSTER_BINARIES = ("etcd", "kube-apiserver", "kube-controller-manager", "kube-scheduler", "kwok")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    here = Path(__file__).parent
    for item in items:
        if here in Path(str(item.fspath)).parents:
            item.add_marker(pytest.mark.e2e)


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
    missing = [b for b in CLUSTER_BINARIES if not (E2E_BIN / b).is_file()]
    if missing:
        if shutil.which("go") is None:
            _unavailable("no KUBECONFIG given and no Go toolchain to build a control plane")
        _unavailable(
            f"no KUBECONFIG given and {', '.join(missing)} not built in {E2E_BIN}: "
            "run `make e2e-build` (or `make e2e`)"
        )
    # A state directory and ports of its own, so neither a cluster from `make cluster-up` nor
    # another test session on the same machine gets in the way.
    state = CACHE / "e2e" / "clusters" / f"pytest-{os.getpid()}"
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
        subprocess.run(["bash", script, "down"], env=env, check=False, capture_output=True)


@pytest.fixture(scope="session")
def cluster(kubeconfig: str) -> Cluster:
    return Cluster(kubeconfig)


@pytest.fixture(scope="session")
def installed(cluster: Cluster) -> Iterator[Cluster]:
    """The chart installed (CRDs, RBAC, service account; its Deployment runs on a fake node)."""
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
    )
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


@pytest.fixture(scope="session")
def operator(
    installed: Cluster, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[OperatorProcess]:
    """The operator as a local process with only the chart's RBAC (its service account)."""
    directory = tmp_path_factory.mktemp("operator")
    sa_config = _service_account_kubeconfig(installed, directory / "kubeconfig")
    # Kept outside pytest's temporary directories, which later sessions prune.
    logs = CACHE / "e2e" / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    proc = OperatorProcess(str(sa_config), logs / f"operator-{os.getpid()}.log")
    proc.start()
    yield proc
    proc.stop()
    print(f"operator log: {proc.log_path}")


@pytest.fixture
def namespace(cluster: Cluster, request: pytest.FixtureRequest) -> Iterator[str]:
    """A fresh namespace per test, deleted afterwards (without waiting)."""
    words = re.sub(r"[^a-z0-9]+", "-", request.node.name.removeprefix("test_").lower())
    name = f"e2e-{words[:40].strip('-')}-{uuid.uuid4().hex[:5]}"
    cluster.kubectl("create", "namespace", name)
    yield name
    cluster.kubectl("delete", "namespace", name, "--wait=false", "--ignore-not-found")
