"""The real kopf operator (watches, handler registration, settings) against the fake API server.

The handler tests call handlers directly; this one proves the wiring: a MemoryGraph appearing
in a watch stream is reconciled by the registered handlers and reaches its children.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from pathlib import Path

import kopf
import memorygraph_operator.handlers  # noqa: F401  (registers the handlers)
import pytest
import yaml
from apiserver import ApiServer
from kubernetes.config import kube_config
from memorygraph_operator.api.base import GROUP
from memorygraph_operator.handlers import resync_all
from memorygraph_operator.settings import configure_kopf
from operator_support import GRAPHS, load_example

pytestmark = pytest.mark.asyncio


async def _eventually(check: object, timeout: float = 15.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not callable(check) or not check():
        assert asyncio.get_running_loop().time() < deadline, "timed out"
        await asyncio.sleep(0.1)


async def _settled(api: ApiServer, quiet: float = 1.0, timeout: float = 15.0) -> None:
    """Wait until the operator has made no request for ``quiet`` seconds."""
    deadline = asyncio.get_running_loop().time() + timeout
    seen = -1
    while seen != len(api.calls):
        assert asyncio.get_running_loop().time() < deadline, "the operator never settled"
        seen = len(api.calls)
        await asyncio.sleep(quiet)


async def test_operator_reconciles_a_graph_created_while_it_runs(
    api: ApiServer, memo: kopf.Memo, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # kopf logs in the way it does in a real installation, here from a kubeconfig.
    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_text(
        yaml.safe_dump(
            {
                "apiVersion": "v1",
                "kind": "Config",
                "current-context": "fake",
                "clusters": [{"name": "fake", "cluster": {"server": str(api.url)}}],
                "users": [{"name": "fake", "user": {"token": "t"}}],
                "contexts": [{"name": "fake", "context": {"cluster": "fake", "user": "fake"}}],
            }
        )
    )
    monkeypatch.setenv("KUBECONFIG", str(kubeconfig))
    # The client library reads KUBECONFIG once, at import.
    monkeypatch.setattr(kube_config, "KUBE_CONFIG_DEFAULT_LOCATION", str(kubeconfig))
    # kopf follows CRDs and namespaces being added: a real API server serves both.
    for ref in ("apiextensions.k8s.io/v1/customresourcedefinitions", "v1/namespaces"):
        api.resources[ref] = {"namespaced": False, "verbs": ["get", "list", "watch"]}
    settings = kopf.OperatorSettings()
    configure_kopf(settings)
    settings.watching.reconnect_backoff = 0.1
    stop, ready = asyncio.Event(), asyncio.Event()
    operator = asyncio.create_task(
        kopf.operator(
            settings=settings,
            memo=memo,
            clusterwide=True,
            standalone=True,
            stop_flag=stop,
            ready_flag=ready,
        )
    )
    try:
        await asyncio.wait_for(ready.wait(), 15)
        api.store(GRAPHS, load_example("memorygraph-minimal.yaml"))
        await _eventually(
            lambda: api.read("apps/v1/statefulsets", "apps", "chat-memory") is not None
        )
        await _eventually(
            lambda: (
                (api.read(GRAPHS, "apps", "chat-memory") or {})
                .get("status", {})
                .get("observedGeneration")
                == 1
            )
        )
        # No finalizer: deleting a graph never waits for the operator to be running.
        graph = api.read(GRAPHS, "apps", "chat-memory")
        assert graph is not None and not graph["metadata"].get("finalizers")
        # Children are read from the watches: once the graph settled, a resync reads the graph
        # and, once per kind of child and not per graph, their names (to notice deletions a
        # watch missed).
        assert memo.reads.watched
        await _settled(api)
        api.calls.clear()
        await resync_all(memo, logging.getLogger("test"))
        lists = [c for c in api.calls if c[0] == "list" and c[2] != "memorygraphs"]
        assert len(lists) == len(set(lists)) == 8, lists
        assert set(api.calls) - set(lists) <= {
            ("list", GROUP, "memorygraphs"),
            ("get", GROUP, "memorygraphs"),
            ("get", "", "secrets"),
        }, api.calls
    finally:
        stop.set()
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.wait_for(operator, 15)
