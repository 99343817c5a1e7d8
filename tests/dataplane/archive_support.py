"""Helpers of the archival tests: recorded sessions, archival runs, the test vault, a service."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from typing import Any

from memorygraph.archive.bundle import RetentionPolicy
from memorygraph.archive.job import Destination, RunSummary, run_archival
from memorygraph.archive.vault import VaultDestination
from memorygraph.client import Client
from memorygraph.graph.service import GraphService
from memorygraph.store import GraphStore, MemoryStore

from .vault_server import DataVault

TOKEN = "vault-token"


def record_session(mg: Client, title: str, *, close: bool = True, turns: int = 2) -> str:
    session = mg.create_session(title=title, user_id="u-1", model="m", metadata={"team": "a"})
    for i in range(turns):
        prompt = mg.add_prompt(session.id, f"{title} question {i}", model="m")
        response = mg.add_response(prompt.id, f"answer {i}", token_usage=(10 + i, 5))
        mg.add_tool_invocation(response.id, tool_name="search", arguments='{"q": 1}')
    if close:
        mg.close_session(session.id)
    return str(session.id)


def archive_all(
    mg: Client,
    destination: Destination,
    *,
    policy: RetentionPolicy,
    progress: Callable[[str], None] = lambda _: None,
    **more: Any,
) -> RunSummary:
    """A run that takes every session closed or idle until now."""
    return run_archival(
        mg,
        destination,
        older_than=dt.timedelta(0),
        policy=policy,
        source="test",
        progress=progress,
        **more,
    )


def _service() -> GraphService:
    return GraphService(GraphStore(MemoryStore()))


def _vault_destination(vault: DataVault) -> VaultDestination:
    return VaultDestination(vault.url, token=TOKEN, backoff=0.01)
