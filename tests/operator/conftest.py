"""Fixtures of the operator tests."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import kopf
import pytest
import pytest_asyncio
from apiserver import ApiServer
from memorygraph_operator.__main__ import build_memo
from memorygraph_operator.handlers import stop_later
from memorygraph_operator.kube import FIELD_MANAGER, Credentials, Kube
from memorygraph_operator.settings import OperatorConfig
from operator_support import GOLDEN, GRAPHS, PLUGINS, Golden
from pods_double import unreachable


@pytest.fixture
def golden(request: pytest.FixtureRequest) -> Golden:
    case = request.node.callspec.id if hasattr(request.node, "callspec") else request.node.name
    return Golden(GOLDEN / request.node.originalname.removeprefix("test_") / case)


# Resources the fake API server serves (a real one lists an empty collection, kmock 404s).
VERBS = ["get", "list", "watch", "create", "update", "patch", "delete"]
SERVED = [
    "v1/configmaps",
    "v1/services",
    "v1/secrets",
    "v1/persistentvolumeclaims",
    "v1/events",
    "apps/v1/statefulsets",
    "autoscaling/v2/horizontalpodautoscalers",
    "policy/v1/poddisruptionbudgets",
    "batch/v1/cronjobs",
    "networking.k8s.io/v1/networkpolicies",
    GRAPHS,
    PLUGINS,
]


@pytest.fixture
def kmock_options(kmock_options: dict[str, Any]) -> dict[str, Any]:
    """Every operator test talks to the stateful :class:`ApiServer` emulator."""
    return {**kmock_options, "cls": ApiServer}


@pytest.fixture
def api(kmock: ApiServer) -> ApiServer:
    """The fake API server with the built-in resources and our CRDs served."""
    for ref in SERVED:
        kmock.resources[ref] = {"namespaced": True, "verbs": VERBS}
    return kmock


@pytest_asyncio.fixture
async def memo(api: ApiServer) -> AsyncIterator[kopf.Memo]:
    """The memo the handlers get, with an API client pointed at the fake API server."""
    kube = Kube(lambda: Credentials(server=str(api.url), headers={}), FIELD_MANAGER)
    memo = build_memo(OperatorConfig(), kube)
    memo.peers = unreachable()  # tests of moves give pods that answer
    yield memo
    await stop_later(memo)
    await kube.close()
