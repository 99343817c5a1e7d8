"""Helpers of the end-to-end tests: kubectl and helm against a real cluster, the operator process.

Everything goes through the real command-line tools (``kubectl``, ``helm``) so the tests see
the cluster exactly as a person would; nothing here knows how the cluster was started.
"""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

import yaml

ROOT = Path(__file__).resolve().parents[2]
CHART = ROOT / "charts" / "memorygraph-operator"
EXAMPLES = ROOT / "docs" / "examples"
CACHE = Path(os.environ.get("MEMORYGRAPH_CACHE", Path.home() / ".cache" / "memorygraph"))
E2E_BIN = Path(os.environ.get("E2E_BIN", CACHE / "e2e" / "bin"))
TOOLS_DIR = Path(os.environ.get("TOOLS_DIR", CACHE / "bin"))

RELEASE = "memorygraph-operator"
OPERATOR_NAMESPACE = "memorygraph-system"
GRAPH_LABEL = "memorygraph.io/graph"

T = TypeVar("T")


def tool(name: str) -> str:
    """The binary built for the tests if there is one, else the one on PATH."""
    for directory in (E2E_BIN, TOOLS_DIR):
        if (directory / name).is_file():
            return str(directory / name)
    return name


class CommandFailed(Exception):
    """A kubectl or helm command exited non-zero; ``stderr`` holds its message."""

    def __init__(self, args: list[str], stderr: str) -> None:
        super().__init__(f"{' '.join(args)}: {stderr.strip()}")
        self.stderr = stderr


def eventually(
    probe: Callable[[], T | None], what: str, timeout: float = 90.0, interval: float = 0.5
) -> T:
    """Call ``probe`` until it returns something truthy; fail naming ``what`` after ``timeout``."""
    deadline = time.monotonic() + timeout
    last: T | CommandFailed | None = None
    while time.monotonic() < deadline:
        try:
            last = probe()
        except CommandFailed as exc:
            last = exc
        else:
            if last:
                return last
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}; last: {last!r}")


def condition(obj: dict[str, Any], type_: str) -> dict[str, Any]:
    """The status condition of ``type_`` (empty when absent)."""
    for c in (obj.get("status") or {}).get("conditions") or []:
        if c.get("type") == type_:
            return dict(c)
    return {}


class Cluster:
    """kubectl and helm bound to one kubeconfig."""

    def __init__(self, kubeconfig: str) -> None:
        self.kubeconfig = kubeconfig

    def run(self, *args: str, input: str | None = None, binary: str = "kubectl") -> str:
        cmd = [tool(binary), "--kubeconfig", self.kubeconfig, *args]
        proc = subprocess.run(cmd, input=input, capture_output=True, text=True, timeout=180)
        if proc.returncode != 0:
            raise CommandFailed(cmd, proc.stderr)
        return proc.stdout

    def kubectl(self, *args: str, input: str | None = None) -> str:
        return self.run(*args, input=input)

    def helm(self, *args: str) -> str:
        return self.run(*args, binary="helm")

    def apply(self, obj: dict[str, Any] | str, *extra: str) -> str:
        """``kubectl apply`` one object (a dict) or YAML text."""
        text = obj if isinstance(obj, str) else yaml.safe_dump(obj)
        return self.kubectl("apply", *extra, "-f", "-", input=text)

    def create_secret(self, namespace: str, name: str, data: dict[str, str]) -> str:
        """``kubectl create secret generic`` with ``data`` as its literal keys and values."""
        literals = (f"--from-literal={key}={value}" for key, value in data.items())
        return self.kubectl("create", "secret", "generic", name, "-n", namespace, *literals)

    def get(self, kind: str, name: str, namespace: str | None = None) -> dict[str, Any] | None:
        """One object as a dict, or None when it does not exist."""
        ns = ["-n", namespace] if namespace else []
        out = self.kubectl("get", kind, name, *ns, "-o", "json", "--ignore-not-found")
        return json.loads(out) if out.strip() else None

    def objects(
        self, kind: str, namespace: str, selector: str | None = None
    ) -> list[dict[str, Any]]:
        sel = ["-l", selector] if selector else []
        out = self.kubectl("get", kind, "-n", namespace, *sel, "-o", "json")
        return list(json.loads(out)["items"])

    def graph(self, namespace: str, name: str) -> dict[str, Any]:
        obj = self.get("memorygraphs.memorygraph.io", name, namespace)
        assert obj is not None, f"MemoryGraph {namespace}/{name} is gone"
        return obj

    def wait_graph(
        self, namespace: str, name: str, ready: str = "True", timeout: float = 120.0
    ) -> dict[str, Any]:
        """Wait until the graph's status describes its current spec and Ready is ``ready``."""

        def probe() -> dict[str, Any] | None:
            obj = self.graph(namespace, name)
            status = obj.get("status") or {}
            if status.get("observedGeneration") != obj["metadata"]["generation"]:
                return None
            return obj if condition(obj, "Ready").get("status") == ready else None

        return eventually(probe, f"{namespace}/{name} Ready={ready}", timeout)

    def wait_condition(
        self,
        namespace: str,
        name: str,
        type_: str,
        *,
        status: str | None = None,
        reason: str | None = None,
        timeout: float = 90.0,
    ) -> dict[str, Any]:
        """Wait until the graph's condition ``type_`` has the ``status`` and the ``reason`` given
        (either or both); the graph then."""
        wanted = {k: v for k, v in {"status": status, "reason": reason}.items() if v is not None}

        def probe() -> dict[str, Any] | None:
            obj = self.graph(namespace, name)
            found = condition(obj, type_)
            return obj if all(found.get(k) == v for k, v in wanted.items()) else None

        return eventually(probe, f"{namespace}/{name} {type_} {wanted}", timeout)

    def pods(self, namespace: str, graph: str) -> list[dict[str, Any]]:
        return self.objects("pods", namespace, f"{GRAPH_LABEL}={graph}")

    def children(self, namespace: str, graph: str) -> dict[str, list[str]]:
        """Names of every object of each child kind labelled with the graph."""
        kinds = (
            "statefulsets,services,configmaps,horizontalpodautoscalers,poddisruptionbudgets,"
            "cronjobs,servicemonitors,secrets,networkpolicies"
        )
        out = self.kubectl(
            "get", kinds, "-n", namespace, "-l", f"{GRAPH_LABEL}={graph}", "-o", "json"
        )
        found: dict[str, list[str]] = {}
        for item in json.loads(out)["items"]:
            found.setdefault(item["kind"], []).append(item["metadata"]["name"])
        return {k: sorted(v) for k, v in found.items()}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class OperatorProcess:
    """``memorygraph-operator`` as a local process, logging to a file."""

    def __init__(self, kubeconfig: str, log_path: Path) -> None:
        self.kubeconfig = kubeconfig
        self.log_path = log_path
        self.health_port = free_port()
        self.metrics_port = free_port()
        self.proc: subprocess.Popen[bytes] | None = None

    def command(self) -> list[str]:
        script = Path(sys.executable).parent / "memorygraph-operator"
        if script.exists():
            return [str(script), "--verbose"]
        return [sys.executable, "-m", "memorygraph_operator", "--verbose"]

    def start(self) -> None:
        env = {
            **os.environ,
            "KUBECONFIG": self.kubeconfig,
            "MEMORYGRAPH_HEALTH_PORT": str(self.health_port),
            "MEMORYGRAPH_METRICS_PORT": str(self.metrics_port),
            "MEMORYGRAPH_BIND_ADDRESS": "127.0.0.1",
            # Children of watched kinds trigger reconciles at once; the resync only matters
            # for drift nothing reports.
            "MEMORYGRAPH_RESYNC_SECONDS": "60",
        }
        with self.log_path.open("ab") as log:
            log.write(f"--- start {time.strftime('%H:%M:%S')}\n".encode())
            self.proc = subprocess.Popen(
                self.command(), stdout=log, stderr=subprocess.STDOUT, env=env
            )
        eventually(self.healthy, "the operator's liveness endpoint", timeout=60)

    def healthy(self) -> bool:
        if self.proc is None or self.proc.poll() is not None:
            raise AssertionError(f"the operator exited; log: {self.log_path}")
        try:
            with urllib.request.urlopen(
                f"http://127.0.0.1:{self.health_port}/healthz", timeout=2
            ) as resp:
                return bool(resp.status == 200)
        except OSError:
            return False

    def metric(self, name: str, **labels: str) -> float:
        """One sample from the operator's Prometheus endpoint (0 when absent)."""
        with urllib.request.urlopen(
            f"http://127.0.0.1:{self.metrics_port}/metrics", timeout=5
        ) as resp:
            text = resp.read().decode()
        wanted = ",".join(f'{k}="{v}"' for k, v in sorted(labels.items()))
        for line in text.splitlines():
            if line.startswith(f"{name}{{{wanted}}} ") or line.startswith(f"{name} "):
                return float(line.rsplit(" ", 1)[1])
        return 0.0

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def count(self, pattern: str) -> int:
        return len(re.findall(pattern, self.log()))

    def kill(self) -> None:
        """SIGKILL: no cleanup handlers, no chance to finish what it was doing."""
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(timeout=30)

    def stop(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(timeout=30)


@contextmanager
def watching(
    cluster: Cluster, namespace: str, kind: str, name: str
) -> Iterator[list[dict[str, Any]]]:
    """Every version of one object while the block runs (``kubectl get --watch``)."""
    cmd = [
        tool("kubectl"),
        "--kubeconfig",
        cluster.kubeconfig,
        "get",
        kind,
        name,
        "-n",
        namespace,
        "--watch",
        "--output-watch-events",
        "-o",
        "json",
    ]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True)
    seen: list[dict[str, Any]] = []
    try:
        yield seen
    finally:
        time.sleep(1)  # let the last changes arrive
        proc.terminate()
        out, _ = proc.communicate(timeout=30)
        decoder = json.JSONDecoder()
        text = out.strip()
        while text:
            try:
                event, end = decoder.raw_decode(text)
            except json.JSONDecodeError:
                if "\n" in text:  # not the last line: the output is not what kubectl writes
                    raise
                break  # the last event, cut short when kubectl was stopped while writing it
            seen.append(event["object"])
            text = text[end:].strip()


def example(name: str, namespace: str) -> dict[str, Any]:
    """A manifest from docs/examples, moved to ``namespace``."""
    obj = yaml.safe_load((EXAMPLES / name).read_text())
    obj["metadata"]["namespace"] = namespace
    return dict(obj)
